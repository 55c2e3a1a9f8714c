#!/bin/sh
# Installs the banger release this script came in (it is install.sh at the top of every release tarball):
#
#   sh banger-VERSION/install.sh [--prefix /opt/banger] [--bin-dir /usr/local/bin]
#
# PREFIX/versions/VERSION gets a copy of the release, PREFIX/current points at it (PREFIX/previous at the release
# it replaces, if any), and BIN_DIR/banger, bangerd and bangerd-root link to PREFIX/current/bin. After that,
# `banger update` swaps releases and `banger doctor --fix` installs the Debian packages banger needs.
set -eu
prefix=/opt/banger
bindir=/usr/local/bin
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --bin-dir) bindir=$2; shift 2 ;;
    *) echo "usage: sh install.sh [--prefix DIR] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' "$here/package.json")
case $version in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "install: cannot read the version from $here/package.json" >&2; exit 1 ;;
esac
dest="$prefix/versions/$version"
if [ -e "$dest" ]; then
  echo "install: $dest exists already; to install it again, remove it first (rm -rf $dest)" >&2
  exit 1
fi
mkdir -p "$prefix/versions" "$bindir"
# Copied under a temporary name and renamed, so versions/ never holds half a release.
cp -a "$here" "$dest.partial.$$"
mv "$dest.partial.$$" "$dest"
if [ -L "$prefix/current" ]; then
  old=$(readlink "$prefix/current")
  ln -sfn "$old" "$prefix/previous.new.$$" && mv -T "$prefix/previous.new.$$" "$prefix/previous"
fi
ln -sfn "versions/$version" "$prefix/current.new.$$" && mv -T "$prefix/current.new.$$" "$prefix/current"
for p in banger bangerd bangerd-root; do ln -sfn "$prefix/current/bin/$p" "$bindir/$p"; done
echo "installed banger $version in $dest; $bindir/banger runs it"
echo "next: banger doctor --fix   (installs the Debian packages banger needs), then: banger vm run -- uname -a"
