#!/bin/sh
# packaging/build-rpm.sh - build the hotpath RPM with rpmbuild (make rpm).
#
#   OUT=build packaging/build-rpm.sh    ->  $OUT/hotpath-VERSION-1.ARCH.rpm
#   (PKGDIR=DIR puts the package there instead of $OUT)
#
# Stages the tree with packaging/install.sh (PREFIX=/usr) and strips the
# binaries, as build-deb.sh does, then runs rpmbuild -bb on
# packaging/rpm/hotpath.spec in a private _topdir. Works with Debian's
# `rpm` package; no RPM-based system is needed to build.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-build}
VERSION=$(sed -n 's/^#define HOTPATH_VERSION "\(.*\)"/\1/p' include/hotpath/version.h)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hotpath-rpm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/stage

OUT=$OUT DESTDIR=$STAGE PREFIX=/usr packaging/install.sh
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
	"$STAGE/usr/sbin/hotpathd" "$STAGE/usr/bin/hotpathctl"
rpmbuild -bb --quiet \
	--define "_topdir $WORK/top" --define "version $VERSION" --define "stage $STAGE" \
	--define "_build_id_links none" \
	packaging/rpm/hotpath.spec >"$WORK/rpmbuild.log" 2>&1 ||
	{ cat "$WORK/rpmbuild.log" >&2; exit 1; }
RPM=$(find "$WORK/top/RPMS" -name '*.rpm' | head -1)
[ -n "$RPM" ] || { cat "$WORK/rpmbuild.log" >&2; exit 1; }
PKGDIR=${PKGDIR:-$OUT}
cp "$RPM" "$PKGDIR/"
echo "  RPM      $PKGDIR/$(basename "$RPM")"
