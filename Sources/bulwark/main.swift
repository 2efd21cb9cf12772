import BulwarkCLI
import ServeCLI

CommandLineEntry.main(additionalSubcommands: [ServeCommand.self, AuditCommand.self])
