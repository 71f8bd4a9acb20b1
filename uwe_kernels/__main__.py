"""`python -m uwe_kernels`: the `uwe-kernels` command."""
import sys

from .cli import main

sys.exit(main())
