#!/bin/bash
# usage: sweep_asset.sh ASSET VIEWS OUTJSON
cd "$(dirname "$0")/../.."
.venv/bin/python -c "
import sys
from pathlib import Path
import glvd_core.fitting.dense_points as d
d.ASSET = Path('$1')
from research.photo_fit.sweep import main
main(['runs/fitdev_val.pkl', '--views', '$2', '--variant', 'base', '--json', '$3'])
"
