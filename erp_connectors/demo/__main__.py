"""`python -m erp_connectors.demo dump|serve ...`: see ``erp_connectors.demo.cli``."""

import sys

from erp_connectors.demo.cli import main

sys.exit(main())
