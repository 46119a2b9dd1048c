"""Static web assets: copy plotly.js (bundled with the ``plotly`` Python package) into ``web/vendor/``.

The site has no build step beyond this copy (no CDN, no bundler). ``web/vendor/`` and
``web/config.json`` are generated, hence git-ignored.

    python -m infra.build_web                       # copy plotly.min.js into web/vendor/
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


def build_web_assets(web_dir: Path | str = WEB_DIR, config: dict | None = None) -> Path:
    """Copy plotly.min.js into ``<web_dir>/vendor/`` (only when it changed); optionally write
    ``<web_dir>/config.json``. Returns the vendor folder. Idempotent and fast."""
    web_dir = Path(web_dir)
    vendor = web_dir / VENDOR
    vendor.mkdir(parents=True, exist_ok=True)
    source = plotly_js_source()
    target = vendor / "plotly.min.js"
    if not target.is_file() or target.stat().st_size != source.stat().st_size or target.stat().st_mtime < source.stat().st_mtime:
        tmp = target.with_suffix(".js.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)  # atomic: a page loading meanwhile never sees half a file
    if config is not None:
        (web_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return vendor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build StrokeLens static web assets (copies plotly.js; no CDN).")
    parser.add_argument("--web-dir", type=Path, default=WEB_DIR, help="site folder (default: web/)")
    parser.add_argument("--config", type=Path, help="a config.json to install into the site (deploy time)")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text()) if args.config else None
    vendor = build_web_assets(args.web_dir, config)
    print(f"web assets ready in {vendor}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
