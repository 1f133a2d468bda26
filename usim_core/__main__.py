import sys

from usim_core.cli import main

sys.exit(main())
