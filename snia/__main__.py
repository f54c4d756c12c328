from snia.cli import main

raise SystemExit(main())
