import BulwarkCLI
#if Serve
import ServeCLI

CommandLineEntry.main(additionalSubcommands: [ServeCommand.self, AuditCommand.self])
#else
CommandLineEntry.main()  // built without the `Serve` trait: no serve or audit commands
#endif
