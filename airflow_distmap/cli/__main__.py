from __future__ import annotations

import sys

from airflow_distmap.cli import main

sys.exit(main())
