from boshcm.cli import main

raise SystemExit(main())
