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
  private ProxyMetrics.Listener meters;

  ConnectionTracker(String listener, ProxyRuntime runtime) {
    this.listener = listener;
    this.runtime = runtime;
  }

  @Override
  public void channelActive(ChannelHandlerContext ctx) {
    String client = ctx.channel().remoteAddress() instanceof InetSocketAddress a
        ? hostPort(a) : String.valueOf(ctx.channel().remoteAddress());
    ctx.channel().attr(ProxyRuntime.CONNECTION).set(new Connection(listener, client));
    meters = runtime.metrics().listener(listener);
    meters.active.incrementAndGet();
    ctx.fireChannelActive();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    if (meters != null) {
      meters.active.decrementAndGet();
    }
    Connection c = ProxyRuntime.connection(ctx.channel());
    if (c != null && c.upstream != null && c.decision != null && c.decision.forward()
        && c.reason == null) {
      runtime.log().close(c);
    }
    ctx.fireChannelInactive();
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (evt instanceof IdleStateEvent) {
      ctx.close(); // timeouts.idle: nothing moved either way
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  static String hostPort(InetSocketAddress a) {
    String ip = a.getAddress() == null ? a.getHostString() : a.getAddress().getHostAddress();
    return (ip.indexOf(':') >= 0 ? "[" + ip + "]" : ip) + ":" + a.getPort();
  }
}
