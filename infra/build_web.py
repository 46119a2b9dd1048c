"""Static web assets: copy the site's two libraries into ``web/vendor/``.

- plotly.js, bundled with the ``plotly`` Python package (the model page's charts);
- dcmjs's browser ES module, from ``node_modules/`` (``npm ci`` installs the exact version that
  package.json and package-lock.json pin): the DICOM reader/writer ``web/js/deid.js`` uses to
  de-identify files before upload. Its build has no ``eval``; the few ``new Function`` calls it
  bundles (ndarray's view constructors, lodash's global lookup fallback) are on code paths
  de-identification never takes, so the site's CSP (``script-src 'self'``) stays as it is.

The site has no build step beyond these copies (no CDN, no bundler). ``web/vendor/`` and
``web/config.json`` are generated, hence git-ignored.

    python -m infra.build_web                       # copy plotly.min.js and dcmjs into web/vendor/
    python -m infra.build_web --config config.json  # ... and install a deploy-time config.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = ROOT / "web"
VENDOR = "vendor"
NODE_MODULES = ROOT / "node_modules"


def plotly_js_source() -> Path:
    """``plotly.min.js`` shipped inside the installed ``plotly`` package."""
    try:
        import plotly
    except ImportError as exc:  # pragma: no cover - plotly is a dev requirement
        raise RuntimeError("the 'plotly' Python package is required to build the web assets (pip install plotly)") from exc
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"plotly.min.js not found in the installed plotly package ({path})")
    return path


def dcmjs_sources(node_modules: Path = NODE_MODULES) -> dict[str, Path]:
    """dcmjs's ES module build and licence, as ``npm ci`` installed them, at the pinned version."""
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["dcmjs"]
    package = node_modules / "dcmjs"
    try:
        installed = json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"dcmjs is not installed in {node_modules}: run `npm ci` (make setup)") from exc
    if installed != pinned:
        raise RuntimeError(f"dcmjs {installed} is installed but package.json pins {pinned}: run `npm ci` (make setup)")
    sources = {"dcmjs.es.js": package / "build" / "dcmjs.es.js", "dcmjs.LICENSE.txt": package / "License.txt"}
    missing = [str(p) for p in sources.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f"dcmjs {installed} lacks {', '.join(missing)}")
    return sources


def _copy_if_changed(source: Path, target: Path) -> None:
    if not target.is_file() or target.stat().st_size != source.stat().st_size or target.stat().st_mtime < source.stat().st_mtime:
        tmp = target.with_suffix(target.suffix + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)  # atomic: a page loading meanwhile never sees half a file


def build_web_assets(web_dir: Path | str = WEB_DIR, config: dict | None = None) -> Path:
    """Copy plotly.min.js and dcmjs into ``<web_dir>/vendor/`` (only when they changed); optionally
    write ``<web_dir>/config.json``. Returns the vendor folder. Idempotent and fast."""
    web_dir = Path(web_dir)
    vendor = web_dir / VENDOR
    vendor.mkdir(parents=True, exist_ok=True)
    _copy_if_changed(plotly_js_source(), vendor / "plotly.min.js")
    for name, source in dcmjs_sources().items():
        _copy_if_changed(source, vendor / name)
    if config is not None:
        (web_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return vendor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build StrokeLens static web assets (copies plotly.js and dcmjs; no CDN).")
    parser.add_argument("--web-dir", type=Path, default=WEB_DIR, help="site folder (default: web/)")
    parser.add_argument("--config", type=Path, help="a config.json to install into the site (deploy time)")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text()) if args.config else None
    vendor = build_web_assets(args.web_dir, config)
    print(f"web assets ready in {vendor}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
