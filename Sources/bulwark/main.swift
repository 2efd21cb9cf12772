import BulwarkCLI

CommandLineEntry.main()
