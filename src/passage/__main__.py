from passage.cli.main import main

raise SystemExit(main())
