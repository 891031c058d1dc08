package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.ssl.SslClientHelloHandler;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.egressproxy.log.Connection;
import org.egressproxy.match.Protocol;
import org.egressproxy.net.PipelineNames;
import org.egressproxy.net.ProxyRuntime;
import org.egressproxy.peek.ClientHello;
import org.egressproxy.policy.Decision;
import org.egressproxy.policy.Destination;
import org.egressproxy.policy.Sources;

/**
 * Transparent TLS ({@code tls-sni}): Netty's {@link SslClientHelloHandler} reassembles the
 * ClientHello across TCP segments and TLS records without consuming a byte; this handler reads
 * the SNI and ALPN, decides, connects to {@code SNI:upstreamPort}, and then removes itself, so the
 * ClientHello reaches the upstream exactly as the client sent it, record framing included.
 * With an Encrypted Client Hello extension the decision is on the outer SNI (the inner name is
 * encrypted), logged with {@code ech: true}, or refused ({@code ech-refused}) under {@code
 * tunnel.refuseEch}. Reads are suppressed while the decision and the connect are pending.
 * Denied or no SNI: a fatal {@code access_denied} alert, then close; bytes that are not TLS:
 * close.
 */
public final class TlsSniHandler extends SslClientHelloHandler<Channel> {
  /** Upper bound of a ClientHello we reassemble (post-quantum ones are ~2 KB). */
  public static final int MAX_CLIENT_HELLO = 32 * 1024;

  private final ProxyRuntime runtime;
  private final int upstreamPort;
  private int firstByte = -1;
  private boolean decided;
  /** Refused (or ended before a decision): closing, nothing more is read. */
  private boolean refused;
  private ScheduledFuture<?> timeout;
  /** The upstream being looked up and connected; cancelled if the client goes away first. */
  private Future<Channel> connecting;

  public TlsSniHandler(ProxyRuntime runtime, int upstreamPort) {
    super(MAX_CLIENT_HELLO);
    this.runtime = runtime;
    this.upstreamPort = upstreamPort;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) throws Exception {
    super.handlerAdded(ctx);
    long ms = runtime.timeouts().clientHello().toMillis();
    timeout = ctx.executor().schedule(() -> {
      Connection c = ProxyRuntime.connection(ctx.channel());
      if (c != null && c.decision == null && c.reason == null) {
        c.method = "TLS";
        c.reason = "client-hello-timeout";
        runtime.decided(c);
      }
      ctx.close();
    }, ms, TimeUnit.MILLISECONDS);
  }

  @Override
  protected void handlerRemoved0(ChannelHandlerContext ctx) throws Exception {
    if (timeout != null) {
      timeout.cancel(false);
    }
    super.handlerRemoved0(ctx);
  }

  /**
   * The client's FIN before a whole ClientHello: nothing more will come, so close now rather
   * than at {@code timeouts.clientHello}. A connection that sent nothing at all (a load
   * balancer's TCP probe) is not a decision and is not logged; one that sent part of a
   * ClientHello is refused as {@code bad-request}. A FIN right behind a whole ClientHello is
   * held back here; {@link Tunnels#join} passes it to the relay after the ClientHello.
   */
  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
    if (evt instanceof io.netty.channel.socket.ChannelInputShutdownEvent) {
      if (!decided) { // else decided or refused already; an allowed tunnel gets it from join
        endedBeforeDecision(ctx);
      }
      return;
    }
    super.userEventTriggered(ctx, evt);
  }

  /**
   * The client ended its connection (a FIN or a reset) before a whole ClientHello: nothing sent
   * is a probe, not logged; part of a ClientHello is a bad request.
   */
  private void endedBeforeDecision(ChannelHandlerContext ctx) {
    decided = true;
    refused = true;
    Connection c = ProxyRuntime.connection(ctx.channel());
    if (firstByte >= 0 && c != null && c.decision == null && c.reason == null) {
      c.method = "TLS";
      c.reason = "bad-request";
      runtime.decided(c);
    }
    ctx.close();
  }

  @Override
  protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out)
      throws Exception {
    if (refused) {
      in.skipBytes(in.readableBytes()); // refused and closing: nothing more is read
      return;
    }
    if (decided) {
      // Bytes behind the ClientHello while its upstream is looked up and connected (early
      // data, say): kept, behind the hello, for the relay.
      return;
    }
    if (firstByte < 0 && in.isReadable()) {
      firstByte = in.getUnsignedByte(in.readerIndex());
    }
    super.decode(ctx, in, out);
  }

  @Override
  protected Future<Channel> lookup(ChannelHandlerContext ctx, ByteBuf body) {
    Connection c = ProxyRuntime.connection(ctx.channel());
    decided = true;
    if (timeout != null) {
      // the whole ClientHello is in: the lookup and the connect have timeouts of their own (a
      // first address that does not answer must leave time for the next)
      timeout.cancel(false);
    }
    c.method = "TLS";
    c.port = upstreamPort;
    if (body == null) {
      return refuse(ctx, c, "bad-request", firstByte == 0x16);
    }
    ClientHello hello;
    try {
      hello = ClientHello.parse(body);
    } catch (ClientHello.MalformedException e) {
      return refuse(ctx, c, "bad-request", true);
    }
    c.sni = hello.serverName();
    c.alpn = hello.alpn();
    c.ech = hello.ech() ? Boolean.TRUE : null;
    if (hello.serverNames() > 1) {
      return refuse(ctx, c, "bad-request", true); // two names: which one would the server use?
    }
    if (hello.serverName() == null) {
      return refuse(ctx, c, "no-sni", true);
    }
    if (!hello.serverNameIsAscii()) {
      return refuse(ctx, c, "invalid-host", true);
    }
    Sources.Identity id = runtime.identify(c, null, false); // by address only: no credentials
    Destination d = Destination.of(hello.serverName(), upstreamPort, Protocol.TLS,
        id.source() == null ? 0 : id.source().index());
    c.host = d.host();
    if (id.refusal() != null) {
      runtime.decided(c);
      return alertAndClose(ctx, TlsAlerts.ACCESS_DENIED);
    }
    if (d.isIp()) {
      return refuse(ctx, c, "invalid-host", true); // RFC 6066: SNI is never an address
    }
    if (hello.ech() && runtime.tunnel().refuseEch()) {
      return refuse(ctx, c, "ech-refused", true); // tunnel.refuseEch: the inner name is hidden
    }
    Decision decision = runtime.decider().decide(id.source(), d);
    c.decision = decision;
    if (!decision.forward()) {
      runtime.decided(c);
      return alertAndClose(ctx, TlsAlerts.ACCESS_DENIED);
    }
    connecting = runtime.connector().connect(ctx.channel().eventLoop(), d,
        runtime.decider().policy(), Tunnels.emptyInit());
    return connecting;
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) throws Exception {
    if (connecting != null) {
      connecting.cancel(false); // no lookup or connect left to do for a client that is gone
    }
    super.channelInactive(ctx);
  }

  @Override
  protected void onLookupComplete(ChannelHandlerContext ctx, Future<Channel> future) {
    if (timeout != null) {
      timeout.cancel(false);
    }
    Connection c = ProxyRuntime.connection(ctx.channel());
    connecting = null;
    if (future.isCancelled()) {
      Tunnels.abandoned(runtime, c, null);
      return;
    }
    if (!future.isSuccess()) {
      Upstreams.failed(runtime, c, future.cause());
      runtime.decided(c);
      alertAndClose(ctx, "private-destination".equals(c.reasonId()) || "loop".equals(c.reason)
          ? TlsAlerts.ACCESS_DENIED : TlsAlerts.INTERNAL_ERROR);
      return;
    }
    Channel upstream = future.getNow();
    if (upstream == null) {
      return; // refused in lookup: the alert is on its way and the channel is closing
    }
    if (!ctx.channel().isActive()) {
      Tunnels.abandoned(runtime, c, upstream);
      return;
    }
    c.upstream = Tunnels.address(upstream); // in the decision line too
    runtime.decided(c);
    Tunnels.join(ctx.channel(), upstream, c, runtime.metrics().bytes(c.listener, c.source),
        PipelineNames.SNI, runtime.tunnel().splice());
    TunnelSniCheck.watchForRetry(runtime, ctx.channel(), upstream); // a second hello, checked
    // Removing this handler hands the buffered ClientHello, unchanged, to the relay.
    ctx.pipeline().remove(this);
  }

  /**
   * A ClientHello over {@link #MAX_CLIENT_HELLO}, or records Netty cannot frame: refused like any
   * other bad hello, at once (it would otherwise wait for the hello timeout). A reset is not a
   * bad hello.
   */
  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    if (!(cause instanceof io.netty.handler.codec.DecoderException)) {
      // The client reset the connection: before a decision, as its FIN would be; after it, the
      // lookup or connect in progress is abandoned (channelInactive).
      if (!decided) {
        endedBeforeDecision(ctx);
      } else {
        ctx.close();
      }
      return;
    }
    Connection c = ProxyRuntime.connection(ctx.channel());
    if (decided || c == null) {
      ctx.close();
      return;
    }
    decided = true;
    c.method = "TLS";
    c.port = upstreamPort;
    refuse(ctx, c, "bad-request", true);
  }

  private Future<Channel> refuse(ChannelHandlerContext ctx, Connection c, String reason,
      boolean alert) {
    refused = true;
    c.reason = reason;
    runtime.decided(c);
    if (alert) {
      return alertAndClose(ctx, TlsAlerts.ACCESS_DENIED);
    }
    ctx.close();
    return ctx.executor().newSucceededFuture(null);
  }

  private Future<Channel> alertAndClose(ChannelHandlerContext ctx, int description) {
    refused = true;
    ctx.writeAndFlush(TlsAlerts.fatal(ctx.alloc(), description))
        .addListener(ChannelFutureListener.CLOSE);
    return ctx.executor().newSucceededFuture(null);
  }
}
