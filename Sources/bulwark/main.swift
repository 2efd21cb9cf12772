import BulwarkCLI

Bulwark.main()
