#!/usr/bin/env bash
# Fetch the scripts the site serves itself, so that math and widgets need no CDN:
# MathJax 3 and the Jupyter widgets HTML manager with require.js, into _assets/ (ignored).
# Sphinx copies _assets/ into the site's _static/ (see html_static_path in _config.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_assets
stamp="$dest/.complete"  # make re-runs this script when it is newer than the stamp
command -v npm >/dev/null || { echo "fetch_assets: npm is needed (apt-get install npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent mathjax@3.2.2 @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.4 >/dev/null)
for tgz in "$work"/*.tgz; do
  mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"
done
rm -rf "$dest" && mkdir -p "$dest/mathjax/output/chtml/fonts" "$dest/widgets"
cp "$work"/mathjax-3.2.2/package/es5/tex-mml-chtml.js "$dest/mathjax/"
cp -r "$work"/mathjax-3.2.2/package/es5/output/chtml/fonts/woff-v2 "$dest/mathjax/output/chtml/fonts/"
# TeX extensions that MathJax loads on first use (\boldsymbol, \cancel, ...)
mkdir -p "$dest/mathjax/input/tex"
cp -r "$work"/mathjax-3.2.2/package/es5/input/tex/extensions "$dest/mathjax/input/tex/"
cp "$work"/requirejs-2.3.4/package/require.js "$dest/widgets/"
# embed-amd.js and the chunks and icon fonts it loads from its own folder
find "$work"/jupyter-widgets-html-manager-1.0.6/package/dist -maxdepth 1 -type f \
  ! -name '*.map' ! -name '*.LICENSE.txt' -exec cp {} "$dest/widgets/" \;
touch "$stamp"
echo "fetch_assets: $(du -sh "$dest" | cut -f1) in $dest"
