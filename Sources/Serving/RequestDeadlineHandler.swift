#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import NIOCore
import NIOHTTPTypes

/// A whole-request deadline on the event loop: from a request's head to its end, at most
/// `deadline`, or the connection is closed. This is what stops a slowloris upload (a body that
/// trickles in a byte at a time keeps resetting an idle timer) on every route, whatever the
/// handlers are doing: it does not depend on a task being scheduled in time. Slow headers and TLS
/// handshakes are covered by the idle timeout before a head exists.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let deadline: TimeAmount
    private let onExpiry: @Sendable () -> Void
    private var timer: Scheduled<Void>?

    init(deadline: TimeAmount, onExpiry: @escaping @Sendable () -> Void = {}) {
        self.deadline = deadline
        self.onExpiry = onExpiry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer?.cancel()
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let onExpiry = self.onExpiry
            timer = context.eventLoop.scheduleTask(in: deadline) {
                onExpiry()
                bound.value.close(promise: nil)
            }
        case .end:
            timer?.cancel()
            timer = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}
#endif
