import sys

from janua_host import main

sys.exit(main())
