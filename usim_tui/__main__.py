import sys

from usim_tui.cli import main

sys.exit(main())
