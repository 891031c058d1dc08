package org.egressproxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import java.util.ArrayDeque;
import org.egressproxy.log.Connection;
import org.egressproxy.match.Protocol;
import org.egressproxy.net.PipelineNames;
import org.egressproxy.net.ProxyRuntime;
import org.egressproxy.policy.Decision;
import org.egressproxy.policy.Destination;
import org.egressproxy.policy.Reason;
import org.egressproxy.policy.Sources;
import org.egressproxy.tunnel.TunnelSniCheck;
import org.egressproxy.tunnel.Tunnels;
import org.egressproxy.tunnel.UpstreamConnector;

/**
 * The {@code http-proxy} listener's CONNECT: decide, resolve, connect, {@code 200 Connection
 * established}, relay, with the tunnel's SNI checked. Every other request goes on to the {@link
 * HttpForwarder} behind it (absolute-form requests; a 400 that says this is a proxy for others).
 */
public final class HttpProxyHandler extends ChannelInboundHandlerAdapter {
  private final ProxyRuntime runtime;
  /** Bytes the client sent after CONNECT, before the tunnel is up: passed on, in order. */
  private final ArrayDeque<ByteBuf> early = new ArrayDeque<>();
  /**
   * The most bytes read ahead of the 200 before reading stops. Clients wait for the 200 before
   * they send, so reads stay on while the upstream connects (saving two epoll updates per
   * tunnel) and stop only for one that does not.
   */
  static final int EARLY_LIMIT = 64 * 1024;
  private boolean tunnelling;
  private int earlyBytes;
  /** The upstream being looked up and connected; cancelled if the client goes away first. */
  private Future<Channel> connecting;

  public HttpProxyHandler(ProxyRuntime runtime) {
    this.runtime = runtime;
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (tunnelling && (evt instanceof io.netty.channel.socket.ChannelInputShutdownEvent
        || evt == org.egressproxy.net.Drain.INSTANCE)) {
      // A tunnel being set up: not for the HTTP handlers behind. Tunnels.join passes a FIN on
      // to the relay; a drain leaves tunnels to end by themselves.
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (tunnelling) {
      if (msg instanceof ByteBuf b) {
        early.add(b); // ownership: released in handlerRemoved if never passed on
        earlyBytes += b.readableBytes();
        if (earlyBytes > EARLY_LIMIT) {
          // A client that does not wait for the 200: hold it until the tunnel is up.
          ctx.channel().config().setAutoRead(false);
        }
      } else {
        ReferenceCountUtil.release(msg); // the CONNECT's empty LastHttpContent
      }
      return;
    }
    if (msg instanceof HttpRequest req && req.decoderResult().isSuccess()
        && req.method() == HttpMethod.CONNECT
        && !(ctx.pipeline().get(PipelineNames.FORWARD) instanceof HttpForwarder f && f.busy())) {
      // (a CONNECT pipelined behind an absolute-form request goes to the forwarder, in order,
      // which refuses it after that request's answer: it must not overtake it)
      ReferenceCountUtil.release(msg);
      connect(ctx, req);
      return;
    }
    ctx.fireChannelRead(msg); // absolute-form and malformed requests: the HttpForwarder
  }

  private void connect(ChannelHandlerContext ctx, HttpRequest req) {
    Connection c = ProxyRuntime.connection(ctx.channel());
    c.method = "CONNECT";
    Authority a = Authority.parse(req.uri(), -1);
    if (a == null) {
      c.host = req.uri();
      c.reason = "bad-request";
      runtime.decided(c);
      reply(ctx, 400, "Bad Request", "egress-proxy: CONNECT needs host:port, not '" + req.uri()
          + "'");
      return;
    }
    Sources.Identity id = runtime.identify(c,
        req.headers().get(HttpHeaderNames.PROXY_AUTHORIZATION), true);
    Destination d = Destination.of(a.host(), a.port(), Protocol.TLS,
        id.source() == null ? 0 : id.source().index());
    c.host = d.host();
    c.port = d.port();
    if (id.refusal() != null) {
      runtime.decided(c);
      refuseClient(ctx, runtime, id, "CONNECT " + d, true);
      return;
    }
    if (!d.valid()) {
      c.reason = Reason.INVALID_HOST.id();
      runtime.decided(c);
      reply(ctx, 400, "Bad Request", "egress-proxy: CONNECT " + req.uri() + " refused: '"
          + a.host() + "' is not a valid DNS name or IP address (numeric shorthands such as"
          + " 127.1 or 0x7f.1 are refused)");
      return;
    }
    Decision decision = runtime.decider().decide(id.source(), d);
    c.decision = decision;
    if (!decision.forward()) {
      runtime.decided(c);
      reply(ctx, 403, "Forbidden", "egress-proxy: CONNECT " + d + " refused: "
          + explain(decision.reason().id()) + forSource(c));
      return;
    }
    // Stop HTTP decoding now: what follows the CONNECT head belongs to the tunnel.
    tunnelling = true;
    ctx.pipeline().remove(PipelineNames.HTTP);
    ctx.pipeline().remove(PipelineNames.AUTH);
    Future<Channel> f = runtime.connector().connect(ctx.channel().eventLoop(), d,
        runtime.decider().policy(), Tunnels.emptyInit());
    connecting = f;
    f.addListener((Future<Channel> done) -> connected(ctx, c, d, done));
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    if (connecting != null) {
      connecting.cancel(false); // no lookup or connect left to do for a client that is gone
    }
    ctx.fireChannelInactive();
  }

  private void connected(ChannelHandlerContext ctx, Connection c, Destination d,
      Future<Channel> f) {
    connecting = null;
    if (f.isCancelled()) {
      Tunnels.abandoned(runtime, c, null);
      return;
    }
    if (!f.isSuccess()) {
      UpstreamFailure r = UpstreamFailure.of(runtime, c, f.cause());
      runtime.decided(c);
      reply(ctx, r.status(), r.phrase(), "egress-proxy: CONNECT " + d + " failed: "
          + f.cause().getMessage());
      return;
    }
    Channel upstream = f.getNow();
    if (!ctx.channel().isActive()) {
      Tunnels.abandoned(runtime, c, upstream);
      return;
    }
    c.upstream = Tunnels.address(upstream); // in the decision line too
    runtime.decided(c);
    ctx.writeAndFlush(HttpResponses.connectionEstablished(ctx.alloc()));
    ctx.pipeline().remove(PipelineNames.FORWARD); // a tunnel now: no more HTTP requests
    ctx.pipeline().addAfter(PipelineNames.PROXY, PipelineNames.SNI_CHECK,
        new TunnelSniCheck(runtime, upstream));
    Tunnels.join(ctx.channel(), upstream, c, runtime.metrics().bytes(c.listener, c.source),
        PipelineNames.SNI_CHECK, runtime.tunnel().splice());
    while (!early.isEmpty()) {
      ctx.fireChannelRead(early.poll()); // ownership passes down the pipeline
    }
    ctx.pipeline().remove(this);
    // reading on, unless the early bytes filled the upstream already (the relay's backpressure)
    ctx.channel().config().setAutoRead(upstream.isWritable());
  }

  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    ByteBuf b;
    while ((b = early.poll()) != null) {
      b.release();
    }
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    ctx.close();
  }

  /** A response, then close; encoded by the HTTP codec while it is still in the pipeline. */
  private static void reply(ChannelHandlerContext ctx, int status, String phrase, String body) {
    Object response = ctx.pipeline().get(PipelineNames.HTTP) != null
        ? HttpResponses.full(ctx.alloc(), status, phrase, body, true)
        : HttpResponses.of(ctx.alloc(), status, phrase, body, true);
    ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
  }

  /**
   * Refuses a client that matches no source: 407 with the challenges when credentials would
   * help, 403 otherwise; then closes when {@code close}.
   */
  static void refuseClient(ChannelHandlerContext ctx, ProxyRuntime runtime,
      Sources.Identity id, String what, boolean close) {
    boolean http = ctx.pipeline().get(PipelineNames.HTTP) != null;
    if (Sources.SOURCE_LIMIT.equals(id.refusal())) {
      String body = "egress-proxy: " + what + " refused: too many connections for source "
          + id.source().name() + " (limit " + id.source().maxConnections() + "); try again later";
      Object r;
      if (http) {
        var full = HttpResponses.full(ctx.alloc(), 503, "Service Unavailable", body, true);
        full.headers().set("Retry-After", "1");
        r = full;
      } else {
        r = HttpResponses.of(ctx.alloc(), 503, "Service Unavailable", body, true,
            "Retry-After: 1");
      }
      ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
      return;
    }
    if (id.challenge()) {
      String body = "egress-proxy: " + what + " refused: " + (id.refusal().equals(
          Sources.AUTH_REQUIRED) ? "proxy credentials required (Proxy-Authorization)"
              : "proxy credentials not accepted");
      String[] challenges = runtime.decider().sources().credentials().challenges();
      Object r;
      if (http) {
        var full = HttpResponses.full(ctx.alloc(), 407, "Proxy Authentication Required", body,
            close);
        for (String ch : challenges) {
          full.headers().add("Proxy-Authenticate", ch.substring(ch.indexOf(':') + 2));
        }
        r = full;
      } else {
        r = HttpResponses.of(ctx.alloc(), 407, "Proxy Authentication Required", body, close,
            challenges);
      }
      var written = ctx.writeAndFlush(r);
      if (close) {
        written.addListener(ChannelFutureListener.CLOSE);
      }
      return;
    }
    String body = "egress-proxy: " + what + " refused: no-source (client "
        + ProxyRuntime.connection(ctx.channel()).client.replaceAll(":\\d+$", "")
        + " is in no policy.sources entry)";
    var written = ctx.writeAndFlush(http
        ? HttpResponses.full(ctx.alloc(), 403, "Forbidden", body, close)
        : HttpResponses.of(ctx.alloc(), 403, "Forbidden", body, close));
    if (close) {
      written.addListener(ChannelFutureListener.CLOSE);
    }
  }

  /** " (source NAME)" for refusal bodies when sources are configured. */
  static String forSource(Connection c) {
    return c.source == null || c.source.equals(Sources.DEFAULT) ? "" : " (source " + c.source
        + ")";
  }

  /** A one-line explanation of a refusal reason, for response bodies. */
  static String explain(String reason) {
    return switch (reason) {
      case "no-match" -> "no-match (no rule allows this destination and port)";
      case "deny-rule" -> "deny-rule (a rule denies this destination)";
      case "private-destination" -> "private-destination (private, loopback or link-local"
          + " address; see policy.allowDestinationCidrs)";
      case "invalid-host" -> "invalid-host (not a valid DNS name or IP address)";
      default -> reason;
    };
  }

  /** The response for an upstream failure, with the connection's reason set. */
  record UpstreamFailure(int status, String phrase) {
    static UpstreamFailure of(ProxyRuntime runtime, Connection c, Throwable cause) {
      if (cause instanceof UpstreamConnector.UpstreamException u) {
        switch (u.failure()) {
          case PRIVATE_DESTINATION -> {
            c.decision = runtime.decider().policy().privateDestination();
            c.reason = null;
            return new UpstreamFailure(403, "Forbidden");
          }
          case LOOP -> {
            c.reason = "loop";
            return new UpstreamFailure(403, "Forbidden");
          }
          case TIMEOUT -> {
            c.reason = "upstream-timeout";
            return new UpstreamFailure(504, "Gateway Timeout");
          }
          case DNS_TIMEOUT -> {
            c.reason = "dns-timeout";
            return new UpstreamFailure(504, "Gateway Timeout");
          }
          default -> {
            c.reason = "upstream-error";
            return new UpstreamFailure(502, "Bad Gateway");
          }
        }
      }
      c.reason = "upstream-error";
      return new UpstreamFailure(502, "Bad Gateway");
    }
  }
}
