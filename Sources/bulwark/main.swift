import BulwarkCLI
#if Serve
import ServeCLI
import ServingClient

CommandLineEntry.main(additionalSubcommands: [ServeCommand.self, AuditCommand.self]) { url, apiKey, ca, rowsPerRequest in
    let api = try RemotePredictionAPI(url: url, apiKey: apiKey, caCertificatePEM: ca, rowsPerRequest: rowsPerRequest)
    return (api, api.modelSHA256)
}
#else
CommandLineEntry.main()  // built without the `Serve` trait: no serve or audit commands, no HTTPS client
#endif
