package org.egressproxy.net;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.timeout.IdleStateEvent;
import java.net.InetSocketAddress;
import org.egressproxy.log.Connection;
import org.egressproxy.metrics.ProxyMetrics;

/**
 * First handler of every client connection: creates its {@link Connection} record, counts it in
 * {@code egress_connections_active}, closes it when idle, and writes the {@code close} event
 * when an allowed connection ends.
 */
final class ConnectionTracker extends ChannelInboundHandlerAdapter {
  private final String listener;
  private final ProxyRuntime runtime;
  private final boolean plainHttp;
  private final boolean transparent;
  private ProxyMetrics.Listener meters;
  private String clientIp;
  private boolean refused;
  /** The tunnel's byte total at the previous idle event, once it splices; -1 before. */
  private long splicedMark = -1;

  /**
   * @param plainHttp whether a refusal can be an HTTP 503 (else the connection is closed)
   * @param transparent whether the listener takes TPROXY'd connections: their local address is
   *     the original destination, logged as {@code originalDst}
   */
  ConnectionTracker(String listener, ProxyRuntime runtime, boolean plainHttp,
      boolean transparent) {
    this.listener = listener;
    this.runtime = runtime;
    this.plainHttp = plainHttp;
    this.transparent = transparent;
  }

  @Override
  public void channelActive(ChannelHandlerContext ctx) {
    String client = ctx.channel().remoteAddress() instanceof InetSocketAddress a
        ? hostPort(a) : String.valueOf(ctx.channel().remoteAddress());
    String ip = ctx.channel().remoteAddress() instanceof InetSocketAddress a
        && a.getAddress() != null ? a.getAddress().getHostAddress() : client;
    ConnectionLimits.Refusal refusal = runtime.limits().admit(ip);
    if (refusal != null) {
      this.refused = true;
      runtime.metrics().limitRejected(listener, refusal.id);
      if (plainHttp) {
        int limit = refusal == ConnectionLimits.Refusal.TOTAL
            ? runtime.limits().limits().maxConnections()
            : runtime.limits().limits().maxConnectionsPerClient();
        ctx.writeAndFlush(org.egressproxy.http.HttpResponses.of(ctx.alloc(), 503,
            "Service Unavailable", "egress-proxy: too many connections"
                + (refusal == ConnectionLimits.Refusal.TOTAL ? "" : " from " + ip)
                + " (limit " + limit + "); try again later", true, "Retry-After: 1"))
            .addListener(io.netty.channel.ChannelFutureListener.CLOSE);
      } else {
        ctx.close();
      }
      return; // nothing further down the pipeline sees this connection
    }
    clientIp = ip;
    String originalDst = transparent
        && ctx.channel().localAddress() instanceof InetSocketAddress local ? hostPort(local) : null;
    ctx.channel().attr(ProxyRuntime.CONNECTION).set(new Connection(listener, client,
        ctx.channel().remoteAddress() instanceof InetSocketAddress a && a.getAddress() != null
            ? org.egressproxy.match.IpLiteral.of(a.getAddress()) : null, originalDst));
    meters = runtime.metrics().listener(listener);
    meters.active.incrementAndGet();
    ctx.fireChannelActive();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    if (clientIp == null) {
      return; // refused by a limit: never counted, never passed on
    }
    runtime.limits().release(clientIp);
    Connection c = ProxyRuntime.connection(ctx.channel());
    if (c != null && c.countedSource != null) {
      runtime.limits().releaseSource(c.countedSource);
    }
    if (meters != null) {
      meters.active.decrementAndGet(); // last: a connection no longer counted holds no place
    }
    if (c != null && c.upstream != null && c.decision != null && c.decision.forward()
        && c.reason == null) {
      c.settleSpliced(); // the upstream may splice on a little after this side closed
      runtime.log().close(c);
    }
    ctx.fireChannelInactive();
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (refused) {
      io.netty.util.ReferenceCountUtil.release(msg); // over a limit: nothing is looked at
      return;
    }
    ctx.fireChannelRead(msg);
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (evt instanceof IdleStateEvent) {
      Connection c = ProxyRuntime.connection(ctx.channel());
      if (c != null && c.splicing() && stillSplicing(c)) {
        return; // spliced bytes pass no handler: moving, not idle
      }
      ctx.close(); // timeouts.idle: nothing moved either way
      return;
    }
    if (evt instanceof io.netty.channel.socket.ChannelInputShutdownEvent) {
      // A client may half-close and still wait for an answer: keep its socket in epoll until
      // it closes (Netty 4.2.18 to 4.2.21 drop it, and with it the answer's tail).
      io.netty.channel.epoll.EgressHalfCloseFix.inputShutdown(ctx.channel());
    }
    ctx.fireUserEventTriggered(evt);
  }

  /**
   * Whether a spliced tunnel moved bytes since the previous idle event (the first counts as
   * moved): the idle handler fires again one idle time later, so a spliced tunnel that went
   * quiet closes after between one and two idle times.
   */
  private boolean stillSplicing(Connection c) {
    c.settleSpliced();
    long total = c.bytesUp + c.bytesDown;
    boolean moved = total != splicedMark;
    splicedMark = total;
    return moved;
  }

  static String hostPort(InetSocketAddress a) {
    return org.egressproxy.match.IpLiteral.hostPort(a);
  }
}
