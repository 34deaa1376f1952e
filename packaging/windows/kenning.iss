; Inno Setup script: wraps PyInstaller's dist\kenning\ folder into one
; KenningSetup-<version>.exe for Windows. Build on Windows (see packaging/README.md):
;   pyinstaller packaging\kenning.spec
;   iscc packaging\windows\kenning.iss
; Per-user install (no administrator rights). The user's index, corrections and
; settings live in %LOCALAPPDATA%\Kenning and %APPDATA%\Kenning (platformdirs), so
; an upgrade or an uninstall never touches them. Signing: see SignTool below.

#define AppName "Kenning"
#define AppVersion "0.1.0"

[Setup]
AppId={{6C1E3E8B-3F0C-4C59-9B7E-4B2B8E3F5A10}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Kenning contributors
DefaultDirName={localappdata}\Programs\{#AppName}
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=KenningSetup-{#AppVersion}
SetupIconFile=..\..\resources\icons\kenning.ico
Compression=lzma2/max
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
; Code signing is the releaser's: define a sign tool named "signtool" in the
; Inno Setup IDE or with iscc /Ssigntool="signtool sign /fd sha256 /tr ... $f"
; and uncomment the next line.
;SignTool=signtool

[Files]
Source: "..\..\dist\kenning\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\Kenning.exe"
Name: "{userdesktop}\{#AppName}"; Filename: "{app}\Kenning.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
Filename: "{app}\Kenning.exe"; Description: "Start Kenning"; Flags: nowait postinstall skipifsilent
