import sys

from reconciler.cli import process_main

sys.exit(process_main())
