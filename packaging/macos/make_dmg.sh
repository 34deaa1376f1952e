#!/bin/sh
# Build Kenning.app and a .dmg on macOS (run from the repository root).
# Signing and notarization are the releaser's: set KENNING_SIGN_IDENTITY (a
# "Developer ID Application: ..." identity) to sign; without it the app is
# ad-hoc signed and Gatekeeper asks the user to confirm the first launch.
set -eu
VERSION=$(python -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
# macOS wants an .icns: make one from the committed PNGs with Apple's iconutil.
ICONSET=build/kenning.iconset
rm -rf "$ICONSET" && mkdir -p "$ICONSET"
for n in 16 32 128 256 512; do
    cp "resources/icons/kenning-$n.png" "$ICONSET/icon_${n}x${n}.png"
done
for n in 16 128 256; do
    cp "resources/icons/kenning-$((n * 2)).png" "$ICONSET/icon_${n}x${n}@2x.png"
done
iconutil -c icns "$ICONSET" -o resources/icons/kenning.icns
pyinstaller --noconfirm packaging/kenning.spec
APP=dist/Kenning.app
if [ -n "${KENNING_SIGN_IDENTITY:-}" ]; then
    codesign --deep --force --options runtime --timestamp \
        --entitlements packaging/macos/entitlements.plist \
        --sign "$KENNING_SIGN_IDENTITY" "$APP"
    # Then: xcrun notarytool submit ... --wait && xcrun stapler staple "$APP"
fi
hdiutil create -volname Kenning -srcfolder "$APP" -ov -format UDZO "dist/Kenning-$VERSION-macos.dmg"
