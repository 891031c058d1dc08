package org.egressproxy.tunnel;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import java.net.InetSocketAddress;
import org.egressproxy.log.Connection;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.PipelineNames;
import org.egressproxy.net.ProxyRuntime;

/** Joining a client channel and a connected upstream channel into a relay. */
public final class Tunnels {
  private Tunnels() {}

  /** The upstream channel's initializer: nothing until the relay is installed. */
  public static ChannelInitializer<Channel> emptyInit() {
    return new ChannelInitializer<>() {
      @Override
      protected void initChannel(Channel ch) {}
    };
  }

  /** The {@code ip:port} ({@code [v6]:port}) a connected channel reaches, or null. */
  public static String address(Channel upstream) {
    if (upstream.remoteAddress() instanceof InetSocketAddress a && a.getAddress() != null) {
      return org.egressproxy.match.IpLiteral.hostPort(a);
    }
    return null;
  }

  /**
   * The client went away while its upstream was looked up or connected: the allowed decision is
   * logged and counted as any other (with the upstream it reached, if it got that far), followed
   * by its close line (nothing relayed), and the upstream, if any, is closed before anything is
   * sent to it.
   */
  public static void abandoned(ProxyRuntime runtime, Connection c, Channel upstream) {
    if (upstream != null) {
      c.upstream = address(upstream);
    }
    runtime.decided(c);
    runtime.log().close(c);
    if (upstream != null) {
      upstream.close();
    }
  }

  /**
   * Installs the two relay directions. The client-side relay goes {@code after} the named
   * handler (or last when null); the caller removes its one-shot handlers afterwards.
   *
   * @param splice {@code tunnel.splice}
   */
  public static void join(Channel client, Channel upstream, Connection c,
      ProxyMetrics.Bytes meters, String after, boolean splice) {
    c.upstream = address(upstream);
    upstream.pipeline().addLast(PipelineNames.RELAY,
        new Relay(client, c, false, meters.down(), null, splice));
    ChannelHandler toUpstream = new Relay(upstream, c, true, meters.up(), null, splice);
    if (after == null) {
      client.pipeline().addLast(PipelineNames.RELAY, toUpstream);
    } else {
      client.pipeline().addAfter(after, PipelineNames.RELAY, toUpstream);
    }
    if (client instanceof DuplexChannel d && d.isInputShutdown()) {
      // The client's FIN came while the tunnel was being set up (the set-up handlers hold it
      // back): pass it on once the caller has handed over the bytes that came before it.
      client.eventLoop().execute(() -> client.pipeline()
          .fireUserEventTriggered(ChannelInputShutdownEvent.INSTANCE));
    }
  }
}
