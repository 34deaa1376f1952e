#!/bin/sh
# Install Kenning for the current user from the unpacked tarball: the app folder
# goes to ~/.local/lib/kenning, a `kenning` link to ~/.local/bin, the menu entry and
# icons to the freedesktop locations. Rerun it to upgrade; user data (index,
# corrections, settings under ~/.local/share/Kenning and ~/.config/Kenning) is
# never touched. `install.sh --uninstall` removes the app, not the data.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$PREFIX/lib/kenning" "$PREFIX/bin/kenning" "$DATA/applications/kenning.desktop"
    find "$DATA/icons/hicolor" -name 'kenning.*' -delete 2>/dev/null || true
    echo "Kenning removed; your data in $DATA/Kenning is kept."
    exit 0
fi
mkdir -p "$PREFIX/lib" "$PREFIX/bin" "$DATA/applications"
rm -rf "$PREFIX/lib/kenning.new"
cp -a "$HERE/kenning" "$PREFIX/lib/kenning.new"
rm -rf "$PREFIX/lib/kenning"
mv "$PREFIX/lib/kenning.new" "$PREFIX/lib/kenning"
ln -sf "$PREFIX/lib/kenning/kenning" "$PREFIX/bin/kenning"
sed "s|^Exec=kenning|Exec=$PREFIX/bin/kenning|" "$HERE/kenning.desktop" > "$DATA/applications/kenning.desktop"
for png in "$HERE"/icons/kenning-*.png; do
    size=$(basename "$png" .png | sed 's/kenning-//')
    mkdir -p "$DATA/icons/hicolor/${size}x${size}/apps"
    cp "$png" "$DATA/icons/hicolor/${size}x${size}/apps/kenning.png"
done
mkdir -p "$DATA/icons/hicolor/scalable/apps"
cp "$HERE/icons/kenning.svg" "$DATA/icons/hicolor/scalable/apps/kenning.svg"
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
echo "Kenning installed: run 'kenning' or find it in your applications menu."
