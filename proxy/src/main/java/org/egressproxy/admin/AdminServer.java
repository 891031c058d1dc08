package org.egressproxy.admin;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.timeout.ReadTimeoutHandler;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.egressproxy.config.HostPort;
import org.egressproxy.match.Protocol;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.Decision;
import org.egressproxy.policy.Destination;
import org.egressproxy.tunnel.UpstreamConnector;

/**
 * The admin listener ({@code admin.bind}): {@code GET /} (a status page: policy, last reload,
 * open connections, most denied destinations), {@code /policy} (the same as JSON), {@code
 * /metrics} (Prometheus text),
 * {@code /healthz} (the process is alive), {@code /readyz} (listeners bound and a policy loaded;
 * 503 otherwise, e.g. while stopping), {@code /check?host=&port=&protocol=} (the offline check,
 * against the running policy). Read-only; anything else is 404 or 405.
 */
public final class AdminServer implements AutoCloseable {
  /** Admin connections open at once; more are closed at accept. */
  static final int MAX_CONNECTIONS = 64;
  /** An admin connection with nothing to read for this long is closed. */
  static final int IDLE_SECONDS = 60;
  /** Requests pipelined behind one being answered; more close the connection. */
  static final int MAX_PIPELINED = 16;

  private final EventLoopGroup group;
  private final Channel channel;
  private final AtomicInteger open = new AtomicInteger();

  public AdminServer(HostPort bind, Transport transport, ProxyMetrics metrics, Status status)
      throws InterruptedException {
    group = transport.newGroup(1, "egress-admin");
    channel = new ServerBootstrap().group(group).channel(transport.serverChannel())
        .childHandler(new ChannelInitializer<>() {
          @Override
          protected void initChannel(Channel ch) {
            if (open.incrementAndGet() > MAX_CONNECTIONS) {
              open.decrementAndGet();
              ch.close(); // scrapers and probes need a few; the file descriptors are the data plane's
              return;
            }
            ch.closeFuture().addListener(f -> open.decrementAndGet());
            ch.pipeline().addLast(new ReadTimeoutHandler(IDLE_SECONDS, TimeUnit.SECONDS));
            ch.pipeline().addLast(new HttpServerCodec(4096, 8192, 8192));
            ch.pipeline().addLast(new HttpObjectAggregator(8192));
            ch.pipeline().addLast(new Routes(metrics, status));
          }
        })
        .bind(new InetSocketAddress(UpstreamConnector.inet(bind.address()), bind.port()))
        .sync().channel();
  }

  public InetSocketAddress address() {
    return (InetSocketAddress) channel.localAddress();
  }

  @Override
  public void close() {
    channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
  }

  /**
   * The routes, one request at a time: while an answer is being written, requests pipelined
   * behind it wait (at most {@link #MAX_PIPELINED}) and the connection is not read, so a client
   * that sends and never reads holds one answer, not the proxy's memory. A request that did not
   * parse is a 400 (a head too large 431), then close.
   */
  private static final class Routes extends SimpleChannelInboundHandler<FullHttpRequest> {
    private final ProxyMetrics metrics;
    private final Status status;
    private final ArrayDeque<FullHttpRequest> waiting = new ArrayDeque<>();
    private boolean answering;

    Routes(ProxyMetrics metrics, Status status) {
      this.metrics = metrics;
      this.status = status;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
      if (answering) {
        if (waiting.size() >= MAX_PIPELINED) {
          ctx.close();
          return;
        }
        waiting.add(req.retain());
        ctx.channel().config().setAutoRead(false);
        return;
      }
      answer(ctx, req);
    }

    private void answer(ChannelHandlerContext ctx, FullHttpRequest req) {
      if (req.decoderResult().isFailure()) {
        Throwable cause = req.decoderResult().cause();
        boolean tooLong = cause instanceof io.netty.handler.codec.TooLongFrameException;
        answering = true;
        ctx.writeAndFlush(response(req, tooLong ? 431 : 400, "text/plain", (tooLong
            ? "request head too large" : "malformed request") + "\n"))
            .addListener(ChannelFutureListener.CLOSE);
        return;
      }
      QueryStringDecoder q = new QueryStringDecoder(req.uri());
      try {
        q.path();
        q.parameters();
      } catch (IllegalArgumentException e) { // a stray '%'
        send(ctx, req, 400, "text/plain", "malformed URI: " + e.getMessage() + "\n");
        return;
      }
      if (!req.method().equals(HttpMethod.GET) && !req.method().equals(HttpMethod.HEAD)) {
        send(ctx, req, 405, "text/plain", "only GET\n");
        return;
      }
      switch (q.path()) {
        case "/metrics" -> send(ctx, req, 200, "text/plain; version=0.0.4; charset=utf-8",
            metrics.scrape());
        case "/healthz" -> send(ctx, req, 200, "text/plain", "ok\n");
        case "/" -> send(ctx, req, 200, "text/html; charset=utf-8", StatusPages.html(status));
        case "/policy" -> send(ctx, req, 200, "application/json",
            StatusPages.policyJson(status));
        case "/readyz" -> {
          boolean ok = status.ready();
          send(ctx, req, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n");
        }
        case "/check" -> check(ctx, req, q);
        default -> send(ctx, req, 404, "text/plain",
            "not found; try /, /metrics, /policy, /healthz, /readyz, /check?host=H&port=P\n");
      }
    }

    private void check(ChannelHandlerContext ctx, FullHttpRequest req, QueryStringDecoder q) {
      String host = first(q, "host");
      String portText = first(q, "port");
      int port;
      try {
        port = portText == null ? 443 : Integer.parseInt(portText);
      } catch (NumberFormatException e) {
        port = -1;
      }
      String proto = first(q, "protocol");
      Protocol p = proto == null ? (port == 80 ? Protocol.HTTP : Protocol.TLS)
          : Protocol.fromId(proto);
      if (host == null || port < 1 || port > 65535 || p == null) {
        send(ctx, req, 400, "text/plain",
            "usage: /check?host=NAME-OR-IP&port=1-65535[&protocol=tls|http][&source=NAME]\n");
        return;
      }
      String sourceName = first(q, "source");
      org.egressproxy.policy.CompiledPolicy policy = status.policy();
      if (sourceName != null) {
        org.egressproxy.policy.Sources.Source s = status.sources().find(sourceName);
        if (s == null) {
          send(ctx, req, 404, "text/plain", "no source '" + sourceName
              + "' in policy.sources\n");
          return;
        }
        policy = s.policy();
      }
      Destination d = Destination.of(host, port, p);
      Decision decision = policy.decide(d);
      StringBuilder sb = new StringBuilder();
      sb.append(decision.allowed() ? "ALLOW " : "DENY ").append(d).append(' ').append(p.id())
          .append(" reason=").append(decision.reason().id());
      if (decision.rule() != null) {
        sb.append(" rule=").append(decision.rule().pattern()).append(" catalog=")
            .append(decision.rule().catalog());
      }
      send(ctx, req, 200, "text/plain", sb.append('\n').toString());
    }

    private static String first(QueryStringDecoder q, String key) {
      var v = q.parameters().get(key);
      return v == null || v.isEmpty() ? null : v.get(0);
    }

    private static FullHttpResponse response(FullHttpRequest req, int status, String type,
        String body) {
      byte[] b = body.getBytes(StandardCharsets.UTF_8);
      FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
          HttpResponseStatus.valueOf(status),
          req.method().equals(HttpMethod.HEAD) ? Unpooled.EMPTY_BUFFER : Unpooled.wrappedBuffer(b));
      r.headers().set(HttpHeaderNames.CONTENT_TYPE, type);
      r.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, b.length);
      r.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-store");
      return r;
    }

    /** Writes the answer; once it is out, the next request waiting is answered, or reading resumes. */
    private void send(ChannelHandlerContext ctx, FullHttpRequest req, int status, String type,
        String body) {
      answering = true;
      boolean keepAlive = HttpUtil.isKeepAlive(req);
      ctx.writeAndFlush(response(req, status, type, body)).addListener(f -> {
        answering = false;
        if (!f.isSuccess() || !keepAlive) {
          ctx.close();
          return;
        }
        FullHttpRequest next = waiting.poll();
        if (next != null) {
          try {
            answer(ctx, next);
          } finally {
            next.release();
          }
        } else {
          ctx.channel().config().setAutoRead(true);
        }
      });
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      FullHttpRequest r;
      while ((r = waiting.poll()) != null) {
        r.release();
      }
      ctx.fireChannelInactive();
    }

    /** A read timeout, a reset, an error in a route: the connection is closed, never left open. */
    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }
  }
}
