#!/bin/sh
# packaging/build-deb.sh - build the hotpath .deb with dpkg-deb (make deb).
#
#   OUT=build packaging/build-deb.sh    ->  $OUT/hotpath_VERSION_ARCH.deb
#   (PKGDIR=DIR puts the package there instead of $OUT)
#
# Stages the tree with packaging/install.sh (PREFIX=/usr), strips the two
# binaries as Debian policy asks, adds the Debian files (copyright,
# changelog, conffiles, maintainer scripts from packaging/deb/), computes
# Depends with dpkg-shlibdeps from the binaries' real library needs, and
# runs dpkg-deb --root-owner-group, so neither root nor fakeroot is needed.
# Deliberately not debhelper: it would pull a toolchain of its own (dh,
# debian/rules, compat levels) into DEPS_PKGS for what are ten lines here,
# and the same staged tree feeds the RPM, so the two cannot disagree.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-build}
VERSION=$(sed -n 's/^#define HOTPATH_VERSION "\(.*\)"/\1/p' include/hotpath/version.h)
ARCH=$(dpkg --print-architecture)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hotpath-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
PKGDIR=${PKGDIR:-$OUT}
DEB=$PKGDIR/hotpath_${VERSION}_${ARCH}.deb

OUT=$OUT DESTDIR=$ROOT PREFIX=/usr packaging/install.sh
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
	"$ROOT/usr/sbin/hotpathd" "$ROOT/usr/bin/hotpathctl"
DOC=$ROOT/usr/share/doc/hotpath
install -m 0644 packaging/deb/copyright "$DOC/copyright"
gzip -9n < packaging/deb/changelog > "$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"
# Policy 12.3: documentation bigger than 4 kB is compressed.
find "$DOC" -name '*.md' -size +4k -exec gzip -9n {} +

install -d -m 0755 "$ROOT/DEBIAN"
install -m 0644 packaging/deb/conffiles "$ROOT/DEBIAN/conffiles"
install -d -m 0755 "$ROOT/usr/share/lintian/overrides"
install -m 0644 packaging/deb/lintian-overrides "$ROOT/usr/share/lintian/overrides/hotpath"
for s in postinst prerm postrm; do
	install -m 0755 "packaging/deb/$s" "$ROOT/DEBIAN/$s"
done

# dpkg-shlibdeps wants a debian/control to read; give it a minimal one.
mkdir -p "$WORK/src/debian"
printf 'Source: hotpath\n\nPackage: hotpath\nArchitecture: any\n' > "$WORK/src/debian/control"
# (Its warning that libm is linked but unused is about the shared LDLIBS.)
DEPENDS=$(cd "$WORK/src" && dpkg-shlibdeps -O "$ROOT/usr/sbin/hotpathd" "$ROOT/usr/bin/hotpathctl" \
	2>"$WORK/shlibdeps.err" | sed -n 's/^shlibs:Depends=//p')
[ -n "$DEPENDS" ] || { cat "$WORK/shlibdeps.err" >&2
	echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    -e "s/@DEPENDS@/$DEPENDS, init-system-helpers (>= 1.52)/" \
	packaging/deb/control.in > "$ROOT/DEBIAN/control"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
	xargs md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "  DEB      $DEB"
