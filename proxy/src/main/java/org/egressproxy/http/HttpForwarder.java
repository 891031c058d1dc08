package org.egressproxy.http;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.egressproxy.log.Connection;
import org.egressproxy.match.Protocol;
import org.egressproxy.net.ProxyRuntime;
import org.egressproxy.policy.Decision;
import org.egressproxy.policy.Destination;
import org.egressproxy.policy.Sources;

/**
 * Forwards plain HTTP/1.1 requests, each decided on its own: absolute-form requests on the
 * {@code http-proxy} listener, or the {@code Host} of each request on {@code http-host}. A
 * kept-alive connection may change host between requests. Requests are rewritten to origin form,
 * hop-by-hop and {@code Proxy-*} headers dropped; one exchange at a time (reading pauses after a
 * request until its response is complete); the upstream connection is reused while the next
 * request goes to the same host and port.
 */
public final class HttpForwarder extends ChannelInboundHandlerAdapter {
  /** Where each request's destination comes from. */
  public enum Mode {
    ABSOLUTE_FORM,
    HOST_HEADER
  }

  /**
   * A response's status line and head, at most: origins send larger heads than clients do
   * (cookies, security policies); over them, the answer is a 502.
   */
  static final int MAX_RESPONSE_LINE = 8 << 10;
  static final int MAX_RESPONSE_HEAD = 64 << 10;
  /** How long a connection closed with its request unread reads on (see lingerThenClose). */
  static final long LINGER_MS = 2000;
  /** RFC 9110 section 9.2.2: methods a request can be sent again with (see resend). */
  private static final java.util.Set<HttpMethod> IDEMPOTENT = java.util.Set.of(HttpMethod.GET,
      HttpMethod.HEAD, HttpMethod.OPTIONS, HttpMethod.TRACE, HttpMethod.PUT, HttpMethod.DELETE);
  private static final List<String> HOP_BY_HOP = List.of("connection", "keep-alive",
      "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer", "upgrade");
  /** Headers a Connection header cannot make hop-by-hop (see copyEndToEnd). */
  private static final List<String> FRAMING = List.of("content-length", "transfer-encoding",
      "host");

  private final ProxyRuntime runtime;
  private final Mode mode;
  private final int upstreamPort;
  /** Messages that arrived while an exchange was in flight, in order. */
  private final ArrayDeque<Object> queued = new ArrayDeque<>();
  /** Body parts of the current request that arrived while its upstream was connecting. */
  private final ArrayDeque<HttpContent> bodyWhileConnecting = new ArrayDeque<>();
  /**
   * The upstream being looked up and connected (null when none is): the body waits for it, and
   * it is cancelled if the client goes away first.
   */
  private Future<Channel> pendingConnect;
  private ChannelHandlerContext ctx;
  private Channel upstream;
  private String upstreamKey;
  private Connection exchange; // the request in flight
  private org.egressproxy.metrics.ProxyMetrics.Bytes meters; // the exchange's byte counters
  private boolean requestDone;
  private boolean discarding; // the body of a refused request
  private boolean closeAfter;
  private boolean informational;
  private boolean headRequest;
  private boolean http10; // the exchange in flight's client speaks HTTP/1.0
  private boolean lingering; // answered, FIN sent: reading and dropping until the client's FIN
  private boolean answered; // the exchange in flight's final response head went to the client
  private boolean reused; // the exchange in flight went on an upstream an earlier one used
  private HttpRequest resend; // its head, when it went on a reused upstream (may go again)
  private Destination resendTo;
  private boolean clientDone; // the client sent its FIN: close once the exchange in flight ends
  private boolean draining; // the proxy is stopping: close once no exchange is in flight
  /**
   * timeouts.response for the exchange in flight: its deadline (System.nanoTime), set once its
   * request went, 0 once a head came. One timer per connection checks it, re-scheduled for
   * what is left rather than per request (an exchange costs a field write, not a timer).
   */
  private long responseDeadline;
  private Connection responseFor;
  private io.netty.util.concurrent.ScheduledFuture<?> responseTimer;

  public HttpForwarder(ProxyRuntime runtime, Mode mode, int upstreamPort) {
    this.runtime = runtime;
    this.mode = mode;
    this.upstreamPort = upstreamPort;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    this.ctx = ctx;
    if (lingering) {
      ReferenceCountUtil.release(msg); // the rest of a body after the answer, or more
      return;
    }
    if (exchange != null && requestDone) {
      // Pipelined - a malformed request too: its 400 must follow the answer in flight, not
      // cut into it.
      queued.add(msg);
      return;
    }
    if (msg instanceof HttpRequest bad && bad.decoderResult().cause() != null) {
      ReferenceCountUtil.release(msg);
      HttpResponses.refuseMalformed(ctx, runtime, bad.decoderResult().cause());
      return;
    }
    if (msg instanceof HttpRequest req) {
      if (exchange != null || discarding) {
        ReferenceCountUtil.release(msg);
        return;
      }
      request(ctx, req);
      ReferenceCountUtil.release(msg); // a request head holds no buffer; content is separate
    } else if (msg instanceof HttpContent content) {
      if (discarding || exchange == null) {
        if (msg instanceof LastHttpContent) {
          discarding = false;
        }
        content.release();
        return;
      }
      if (content.decoderResult().isFailure()) {
        content.release(); // a chunk Netty could not read: the body ends nowhere we can tell
        malformedBody(ctx, content.decoderResult().cause());
        return;
      }
      exchange.bytesUp += content.content().readableBytes();
      meters.up().increment(content.content().readableBytes());
      boolean last = msg instanceof LastHttpContent;
      if (pendingConnect != null) {
        bodyWhileConnecting.add(content); // released or written once the connect completes
      } else {
        upstream.writeAndFlush(msg); // ownership passes to the upstream's outbound buffer
        if (!last && !upstream.isWritable()) {
          // backpressure: the client's body waits in its socket, not in the proxy's memory,
          // until the upstream takes more (ResponseRelay.channelWritabilityChanged)
          ctx.channel().config().setAutoRead(false);
        }
      }
      if (last) {
        requestDone = true;
        ctx.channel().config().setAutoRead(false); // one exchange at a time
        armResponseTimer();
      }
    } else {
      ReferenceCountUtil.release(msg);
    }
  }

  /**
   * A request body Netty could not frame (a bad chunk size, a bare LF in chunked coding): the
   * upstream is closed before the body's end reaches it, so the origin never takes a truncated
   * body for a whole one; the client gets a 400 (or, when its answer has begun, its connection
   * closed), as a malformed head would.
   */
  private void malformedBody(ChannelHandlerContext ctx, Throwable cause) {
    Channel up = upstream;
    upstream = null; // before closing: its handler must know it is no longer current
    upstreamKey = null;
    if (up != null) {
      up.close();
    }
    if (pendingConnect != null) {
      pendingConnect.cancel(false); // its listener ends the exchange (Tunnels.abandoned)
    }
    Connection c = exchange;
    exchange = null;
    discarding = true;
    if (c != null && c.decision != null && c.reason == null) {
      runtime.log().close(c);
    }
    if (answered) {
      ctx.close();
      return;
    }
    ctx.writeAndFlush(HttpResponses.full(ctx.alloc(), 400, "Bad Request",
        "egress-proxy: malformed request body: " + cause.getMessage(), true))
        .addListener(ChannelFutureListener.CLOSE);
  }

  /** An exchange in flight or requests queued behind one: a CONNECT must not overtake them. */
  boolean busy() {
    return exchange != null || pendingConnect != null || !queued.isEmpty() || lingering;
  }

  /**
   * Removed from the pipeline (a CONNECT after kept-alive requests makes the connection a
   * tunnel): the kept-alive upstream has no client any more, so it is closed, not left open.
   */
  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    stopResponseTimer();
    if (upstream != null) {
      Channel old = upstream;
      upstream = null;
      old.close();
    }
    releaseHeld();
  }

  /** Releases the body parts and messages held for later. */
  private void releaseHeld() {
    HttpContent part;
    while ((part = bodyWhileConnecting.poll()) != null) {
      part.release();
    }
    Object m;
    while ((m = queued.poll()) != null) {
      ReferenceCountUtil.release(m);
    }
  }

  private void request(ChannelHandlerContext ctx, HttpRequest req) {
    Connection channelConn = ProxyRuntime.connection(ctx.channel());
    Connection c = channelConn.forRequest();
    c.method = req.method().name();
    if (req.method().equals(HttpMethod.CONNECT)) { // pipelined behind another request
      c.host = req.uri();
      refuse(ctx, c, "bad-request", 400, "Bad Request", "egress-proxy: a CONNECT pipelined"
          + " behind another request is refused; send it on a connection of its own, or after"
          + " the answers");
      return;
    }
    String host;
    int port;
    String path;
    String uri = req.uri();
    String hostHeader = req.headers().get(HttpHeaderNames.HOST);
    if (mode == Mode.ABSOLUTE_FORM) {
      if (uri.startsWith("/") || uri.equals("*")) {
        refuse(ctx, c, "bad-request", 400, "Bad Request", "egress-proxy: this is a proxy; send"
            + " absolute-form requests (GET http://host/path) or CONNECT host:port");
        return;
      }
      String lower = uri.length() >= 7 ? uri.substring(0, 7).toLowerCase(Locale.ROOT) : "";
      if (!lower.equals("http://")) {
        refuse(ctx, c, "bad-request", 400, "Bad Request", "egress-proxy: only http:// URIs are"
            + " forwarded; use CONNECT host:443 for https");
        return;
      }
      int slash = firstOf(uri, 7);
      Authority a = Authority.parse(uri.substring(7, slash), 80);
      if (a == null) {
        refuse(ctx, c, "bad-request", 400, "Bad Request", "egress-proxy: bad authority in " + uri);
        return;
      }
      if (hostHeader != null) {
        Authority h = Authority.parse(hostHeader, 80);
        if (h == null || !h.host().equalsIgnoreCase(a.host()) || h.port() != a.port()) {
          c.host = a.host();
          refuse(ctx, c, "bad-request", 400, "Bad Request", "egress-proxy: Host header '"
              + hostHeader + "' disagrees with the request URI's authority '" + a.host() + "'");
          return;
        }
      }
      host = a.host();
      port = a.port();
      path = slash < uri.length() ? uri.substring(slash) : "/";
      if (!path.startsWith("/")) {
        path = "/" + path;
      }
      hostHeader = uri.substring(7, slash);
    } else {
      Authority h = hostHeader == null ? null : Authority.parse(hostHeader, upstreamPort);
      if (h == null) {
        refuse(ctx, c, "bad-request", 400, "Bad Request", "egress-proxy: a Host header is"
            + " required");
        return;
      }
      host = h.host();
      port = upstreamPort; // transparent: the port the traffic was sent to, whatever Host says
      path = uri.startsWith("/") ? uri : "/";
    }
    Sources.Identity id = runtime.identify(c, mode == Mode.ABSOLUTE_FORM
        ? req.headers().get(HttpHeaderNames.PROXY_AUTHORIZATION) : null,
        mode == Mode.ABSOLUTE_FORM);
    Destination d = Destination.of(host, port, Protocol.HTTP,
        id.source() == null ? 0 : id.source().index());
    c.host = d.host();
    c.port = port;
    if (id.refusal() != null) {
      discarding = true; // drop the refused request's body, keep the connection
      runtime.decided(c);
      HttpProxyHandler.refuseClient(ctx, runtime, id, c.method + " " + d, false);
      return;
    }
    if (!d.valid()) {
      refuse(ctx, c, "invalid-host", 400, "Bad Request", "egress-proxy: '" + host
          + "' is not a valid host name");
      return;
    }
    Decision decision = runtime.decider().decide(id.source(), d);
    c.decision = decision;
    if (!decision.forward()) {
      refuse(ctx, c, null, 403, "Forbidden", "egress-proxy: " + c.method + " " + d
          + " refused: " + HttpProxyHandler.explain(decision.reason().id())
          + HttpProxyHandler.forSource(c));
      return;
    }
    DefaultHttpRequest out = new DefaultHttpRequest(HttpVersion.HTTP_1_1, req.method(), path);
    copyEndToEnd(req.headers(), out.headers());
    out.headers().set(HttpHeaderNames.HOST, hostHeader);
    closeAfter = !HttpUtil.isKeepAlive(req);
    http10 = req.protocolVersion().equals(HttpVersion.HTTP_1_0);
    headRequest = req.method().equals(HttpMethod.HEAD);
    exchange = c;
    meters = runtime.metrics().bytes(c.listener, c.source);
    requestDone = false;
    answered = false;
    resend = null;
    String key = d.host() + ":" + port;
    reused = upstream != null && upstream.isActive() && key.equals(upstreamKey);
    if (reused) {
      runtime.decided(c);
      c.upstream = org.egressproxy.tunnel.Tunnels.address(upstream);
      resend = out; // looked at only if the connection closes under it (upstreamFailed)
      resendTo = d;
      upstream.writeAndFlush(out);
      return;
    }
    if (upstream != null) {
      Channel old = upstream;
      upstream = null; // before closing: its handler must know it is no longer current
      old.close();
    }
    ctx.channel().config().setAutoRead(false); // hold the body until the upstream is there
    openUpstream(ctx, c, d, out, false);
  }

  /**
   * Connects to {@code d} for the exchange {@code c} and sends {@code out}, then the body as it
   * comes; {@code again}: {@code out} is a bodiless request sent once already, on a kept-alive
   * connection the origin closed (its decision is logged, its end of message is written here).
   */
  private void openUpstream(ChannelHandlerContext ctx, Connection c, Destination d,
      HttpRequest out, boolean again) {
    String key = d.host() + ":" + d.port();
    Future<Channel> f = runtime.connector().connect(ctx.channel().eventLoop(), d,
        runtime.decider().policy(), new ChannelInitializer<>() {
          @Override
          protected void initChannel(Channel ch) {
            ch.pipeline().addLast("http", new HttpClientCodec(new HttpDecoderConfig()
                .setMaxInitialLineLength(MAX_RESPONSE_LINE)
                .setMaxHeaderSize(MAX_RESPONSE_HEAD), false, false));
            ch.pipeline().addLast("response", new ResponseRelay());
          }
        });
    pendingConnect = f; // set before the listener, which may run at once and clear it
    f.addListener((Future<Channel> done) -> {
      pendingConnect = null;
      if (done.isCancelled()) { // the client went away while the name was looked up
        exchange = null;
        org.egressproxy.tunnel.Tunnels.abandoned(runtime, c, null);
        return;
      }
      if (!done.isSuccess()) {
        HttpContent part;
        while ((part = bodyWhileConnecting.poll()) != null) {
          part.release();
        }
        HttpProxyHandler.UpstreamFailure r =
            HttpProxyHandler.UpstreamFailure.of(runtime, c, done.cause());
        exchange = null;
        discarding = !requestDone;
        refuseLogged(ctx, c, r.status(), r.phrase(), "egress-proxy: " + c.method + " " + d
            + " failed: " + done.cause().getMessage());
        exchangeDone(); // pipelined requests next, or the close a FIN or the drain asked for
        return;
      }
      if (!ctx.channel().isActive()) { // the client went away meanwhile
        exchange = null;
        org.egressproxy.tunnel.Tunnels.abandoned(runtime, c, done.getNow());
        return;
      }
      upstream = done.getNow();
      upstreamKey = key;
      c.upstream = org.egressproxy.tunnel.Tunnels.address(upstream);
      if (!again) {
        runtime.decided(c);
      }
      upstream.write(out);
      if (again) {
        upstream.write(LastHttpContent.EMPTY_LAST_CONTENT);
      }
      HttpContent part;
      while ((part = bodyWhileConnecting.poll()) != null) {
        upstream.write(part);
      }
      upstream.flush();
      upstream.config().setAutoRead(true);
      if (!requestDone) {
        ctx.channel().config().setAutoRead(true);
      }
    });
  }

  private static int firstOf(String uri, int from) {
    for (int i = from; i < uri.length(); i++) {
      char ch = uri.charAt(i);
      if (ch == '/' || ch == '?' || ch == '#') {
        return i;
      }
    }
    return uri.length();
  }

  /**
   * Copies headers, leaving out hop-by-hop ones and those the Connection header names - except
   * the message's framing ({@code Content-Length}, {@code Transfer-Encoding}) and {@code Host}:
   * the decoder framed the body by them, so the next hop must too (dropped, the body would reach
   * the origin as a request of its own that was never decided).
   */
  static void copyEndToEnd(HttpHeaders from, HttpHeaders to) {
    List<String> named = new java.util.ArrayList<>();
    for (String v : from.getAll(HttpHeaderNames.CONNECTION)) {
      for (String token : v.split(",")) {
        String t = token.strip().toLowerCase(Locale.ROOT);
        if (!FRAMING.contains(t)) {
          named.add(t);
        }
      }
    }
    from.forEach(e -> {
      String name = e.getKey().toLowerCase(Locale.ROOT);
      if (!HOP_BY_HOP.contains(name) && !named.contains(name) && !name.startsWith("proxy-")) {
        to.add(e.getKey(), e.getValue());
      }
    });
  }

  private void refuse(ChannelHandlerContext ctx, Connection c, String reason, int status,
      String phrase, String body) {
    c.reason = reason;
    discarding = true; // drop the refused request's body, keep the connection
    refuseLogged(ctx, c, status, phrase, body);
  }

  private void refuseLogged(ChannelHandlerContext ctx, Connection c, int status, String phrase,
      String body) {
    runtime.decided(c);
    // after a bad request nothing on the connection is trusted; while draining, nothing more
    // is taken on it
    boolean close = status == 400 || draining;
    var written = ctx.writeAndFlush(HttpResponses.full(ctx.alloc(), status, phrase, body, close));
    if (close) {
      written.addListener(ChannelFutureListener.CLOSE);
    }
  }

  /**
   * The client's FIN, or the proxy's drain: the connection closes once nothing is left to
   * answer ({@link #nothingLeftToAnswer}) - at once if that is now, else when the exchange in
   * flight ends (a client may half-close and still wait for its answer).
   */
  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    boolean fin = evt instanceof ChannelInputShutdownEvent;
    if (fin && lingering) {
      ctx.close(); // the client has sent all it will: nothing can reset the answer now
      return;
    }
    if (fin || evt == org.egressproxy.net.Drain.INSTANCE) {
      this.ctx = ctx;
      clientDone |= fin;
      draining |= !fin;
      if (nothingLeftToAnswer()) {
        closeWhenWritten();
      }
    }
    ctx.fireUserEventTriggered(evt);
  }

  /**
   * After the client's FIN: no exchange in flight, or a request the FIN cut short (it never
   * completes). While draining: no exchange in flight (an idle keep-alive connection; its
   * client reconnects elsewhere).
   */
  private boolean nothingLeftToAnswer() {
    return clientDone && (exchange == null || !requestDone) || draining && exchange == null;
  }

  private void closeWhenWritten() {
    if (upstream != null && exchange != null) {
      upstream.close(); // an unfinished request: the upstream will never see its end
    }
    ctx.writeAndFlush(io.netty.buffer.Unpooled.EMPTY_BUFFER)
        .addListener(ChannelFutureListener.CLOSE);
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    stopResponseTimer();
    ctx.fireChannelInactive();
    if (pendingConnect != null) {
      pendingConnect.cancel(false); // no lookup or connect left to do for a client that is gone
    }
    Connection cut = exchange;
    if (cut != null && cut.upstream != null && cut.decision != null && cut.decision.forward()
        && cut.reason == null) {
      exchange = null;
      runtime.log().close(cut); // an exchange the client walked out of ends here
    }
    if (upstream != null) {
      upstream.close();
    }
    releaseHeld();
  }

  @Override
  public void channelWritabilityChanged(ChannelHandlerContext ctx) {
    if (upstream != null) {
      upstream.config().setAutoRead(ctx.channel().isWritable());
    }
    ctx.fireChannelWritabilityChanged();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    ctx.close();
  }

  /** The end of an exchange: log it, then take the next queued request or read again. */
  private void exchangeDone() {
    cancelResponseTimer();
    Connection c = exchange;
    exchange = null;
    if (c != null && c.decision != null && c.reason == null) {
      runtime.log().close(c);
    }
    if (closeAfter || draining) {
      // The answer said Connection: close (or the drain began while it went out): requests
      // pipelined behind it are not answered - the client retries them elsewhere, and must be
      // able to trust that they were not forwarded.
      if (!requestDone) {
        lingerThenClose();
        return;
      }
      ctx.writeAndFlush(io.netty.buffer.Unpooled.EMPTY_BUFFER)
          .addListener(ChannelFutureListener.CLOSE);
      return;
    }
    while (exchange == null || !requestDone) {
      Object next = queued.poll();
      if (next == null) {
        break;
      }
      channelRead(ctx, next);
    }
    if (nothingLeftToAnswer()) {
      closeWhenWritten(); // the client's FIN, or the proxy's drain, came during the exchange
      return;
    }
    if (exchange == null || !requestDone && pendingConnect == null && upstream != null
        && upstream.isWritable()) {
      // (a pipelined request's upstream still connecting: its listener reads on)
      ctx.channel().config().setAutoRead(true);
      ctx.read();
    }
  }

  /**
   * Closes the client's connection after an answer that came before the request's body was all
   * read (a 413, a 502): closed at once, the unread body would make the kernel reset the
   * connection, and a reset can destroy the answer before the client reads it. So the answer
   * is followed by a FIN, and what the client still sends is read and dropped until its own
   * FIN, or {@link #LINGER_MS} (what web servers call a lingering close).
   */
  private void lingerThenClose() {
    lingering = true;
    ctx.writeAndFlush(io.netty.buffer.Unpooled.EMPTY_BUFFER).addListener(f -> {
      if (ctx.channel() instanceof io.netty.channel.socket.DuplexChannel d) {
        d.shutdownOutput();
      } else {
        ctx.close();
      }
    });
    ctx.executor().schedule(() -> ctx.close(), LINGER_MS,
        java.util.concurrent.TimeUnit.MILLISECONDS);
    ctx.channel().config().setAutoRead(true);
  }

  /**
   * The upstream of the exchange in flight closed or sent what is not HTTP. Before the answer's
   * head: a 502 that says so (the client's connection stays open when the request was read
   * whole) - except for a kept-alive connection closed as it was reused ({@code retryable}): a
   * bodiless idempotent request goes again on a new connection, and for any other the client's
   * connection is closed, as the origin's own closing would have been, so that the client
   * decides whether to send it again (RFC 9112 section 9.3.1). After the head: the answer is cut
   * short, and only closing the client's connection says so.
   */
  private void upstreamFailed(Channel failed, String what, boolean retryable) {
    upstreamFailed(failed, what, retryable, 502, "Bad Gateway");
  }

  /**
   * From the time the request was sent whole (again, when it was resent) to the answer's head:
   * at most timeouts.response, else a 504 and the upstream closed - an origin that accepts and
   * never answers does not hold the client until the idle timeout.
   */
  private void armResponseTimer() {
    if (exchange == null) {
      return;
    }
    long limit = runtime.timeouts().response().toNanos();
    responseDeadline = System.nanoTime() + limit;
    responseFor = exchange;
    if (responseTimer == null) {
      responseTimer = ctx.executor().schedule(this::checkResponse, limit, TimeUnit.NANOSECONDS);
    }
  }

  private void checkResponse() {
    responseTimer = null;
    if (responseDeadline == 0 || !ctx.channel().isActive()) {
      return; // nothing waits for an answer: the timer lapses until the next request
    }
    long left = responseDeadline - System.nanoTime();
    if (left > 0) {
      responseTimer = ctx.executor().schedule(this::checkResponse, left, TimeUnit.NANOSECONDS);
      return;
    }
    responseDeadline = 0;
    if (exchange == responseFor && exchange != null && upstream != null && !answered) {
      upstreamFailed(upstream, "did not answer within timeouts.response ("
          + text(runtime.timeouts().response()) + ")", false, 504, "Gateway Timeout");
    }
  }

  /** A duration as the configuration writes it: 300ms, 90s, 5m, 1h. */
  static String text(java.time.Duration d) {
    long ms = d.toMillis();
    return ms % 3_600_000 == 0 ? ms / 3_600_000 + "h" : ms % 60_000 == 0 ? ms / 60_000 + "m"
        : ms % 1000 == 0 ? ms / 1000 + "s" : ms + "ms";
  }

  /** No answer is awaited (any more): the timer, if any, lapses when it next looks. */
  private void cancelResponseTimer() {
    responseDeadline = 0;
    responseFor = null;
  }

  /** The connection ends: its timer goes too. */
  private void stopResponseTimer() {
    cancelResponseTimer();
    if (responseTimer != null) {
      responseTimer.cancel(false);
      responseTimer = null;
    }
  }

  private void upstreamFailed(Channel failed, String what, boolean retryable, int status,
      String phrase) {
    cancelResponseTimer();
    upstream = null;
    upstreamKey = null;
    if (failed != null) {
      failed.close();
    }
    if (retryable && !answered && resend != null && IDEMPOTENT.contains(resend.method())
        && !HttpUtil.isTransferEncodingChunked(resend)
        && HttpUtil.getContentLength(resend, 0L) == 0) {
      // what a browser does on a kept-alive connection closed under its request (RFC 9112
      // section 9.3.1), done here: a bodiless idempotent request is sent once more, on a new
      // connection
      HttpRequest again = resend;
      resend = null;
      reused = false;
      openUpstream(ctx, exchange, resendTo, again, true);
      armResponseTimer(); // the answer's time starts again with the request sent again
      return;
    }
    if (answered || retryable) {
      ctx.close(); // channelInactive writes the exchange's close line
      return;
    }
    Connection c = exchange;
    ctx.writeAndFlush(HttpResponses.full(ctx.alloc(), status, phrase, "egress-proxy: "
        + c.method + " " + c.host + ":" + c.port + " failed: the upstream " + what,
        closeAfter || draining || !requestDone));
    if (!requestDone) {
      discarding = true; // the rest of the body has nowhere to go
      closeAfter = true;
    }
    exchangeDone();
  }

  /** Upstream side: responses go back to the client as they come, with backpressure. */
  private final class ResponseRelay extends ChannelInboundHandlerAdapter {
    @Override
    public void channelRead(ChannelHandlerContext uctx, Object msg) {
      if (!(msg instanceof HttpObject o) || exchange == null || uctx.channel() != upstream) {
        ReferenceCountUtil.release(msg);
        return;
      }
      if (o.decoderResult().isFailure()) {
        ReferenceCountUtil.release(msg);
        upstreamFailed(uctx.channel(), "answered with something that is not HTTP/1.1 ("
            + o.decoderResult().cause().getMessage() + ")", false);
        return;
      }
      if (msg instanceof HttpResponse resp) {
        cancelResponseTimer(); // an answer (or a 100 Continue: the origin is there)
        int code = resp.status().code();
        if (code == 101) {
          // The proxy never forwards an Upgrade (hop-by-hop): a switch nobody asked for would
          // leave both ends speaking a protocol the proxy cannot frame.
          ReferenceCountUtil.release(msg);
          upstreamFailed(uctx.channel(), "switched protocols (101), though no upgrade was"
              + " asked for: the proxy does not forward upgrades", false);
          return;
        }
        informational = code >= 100 && code < 200 && code != 101;
        answered |= !informational;
        HttpResponse out = new io.netty.handler.codec.http.DefaultHttpResponse(
            HttpVersion.HTTP_1_1, resp.status());
        copyEndToEnd(resp.headers(), out.headers());
        boolean bodyless = informational || code == 204 || code == 304 || headRequest;
        boolean delimitedByClose = !bodyless && !HttpUtil.isContentLengthSet(out)
            && !HttpUtil.isTransferEncodingChunked(out);
        if (delimitedByClose) {
          upstreamKey = null; // the upstream connection ends with this answer
        }
        if (http10 && !bodyless && !HttpUtil.isContentLengthSet(out)) {
          // An HTTP/1.0 client knows no chunked coding (RFC 9112 section 6.1): the body goes
          // as it comes, and closing the connection ends it.
          out.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
          closeAfter = true;
        } else if (delimitedByClose) {
          // HTTP/1.1: chunked for the client, whose connection stays open
          HttpUtil.setTransferEncodingChunked(out, true);
        }
        if (closeAfter || draining && !informational) {
          // the connection ends after this answer (while draining: so the client does not
          // send another request on it, but opens a new connection elsewhere)
          out.headers().set(HttpHeaderNames.CONNECTION, "close");
        }
        if (!HttpUtil.isKeepAlive(resp)) {
          upstreamKey = null; // the origin closes after this response: do not reuse
        }
        ReferenceCountUtil.release(msg);
        ctx.write(out);
        return;
      }
      HttpContent content = (HttpContent) msg;
      exchange.bytesDown += content.content().readableBytes();
      meters.down().increment(content.content().readableBytes());
      boolean last = msg instanceof LastHttpContent;
      ctx.writeAndFlush(msg); // ownership passes to the client's outbound buffer
      if (!ctx.channel().isWritable()) {
        uctx.channel().config().setAutoRead(false);
      }
      if (last) {
        if (informational) {
          informational = false;
          return;
        }
        // Not reused when the origin said so, or answered before the request's body was all
        // there (a 413, a 401): the rest of the body is dropped, and the origin, which may
        // still be waiting for it, would read the next request as its end.
        boolean closeUpstream = upstreamKey == null || !requestDone;
        if (closeUpstream) {
          upstream = null; // not reused; its closing must not end the client's connection
        }
        exchangeDone();
        if (closeUpstream) {
          uctx.close();
        }
      }
    }

    /** The upstream takes more of the request's body: read on from the client. */
    @Override
    public void channelWritabilityChanged(ChannelHandlerContext uctx) {
      if (uctx.channel() == upstream && uctx.channel().isWritable() && exchange != null
          && !requestDone && pendingConnect == null && !lingering) {
        ctx.channel().config().setAutoRead(true);
      }
      uctx.fireChannelWritabilityChanged();
    }

    @Override
    public void channelInactive(ChannelHandlerContext uctx) {
      if (uctx.channel() != upstream) {
        return; // a previous host's connection, closed on purpose
      }
      if (exchange != null) {
        upstreamFailed(null, "closed the connection before answering", reused);
      } else {
        upstream = null;
      }
    }

    /**
     * The origin's FIN (upstream connections allow half-closure, for tunnels): after the
     * decoder has ended a body delimited by it, nothing more can come, so the connection is
     * closed - an exchange still waiting for its answer fails ({@link #upstreamFailed}), an idle
     * one is not reused.
     */
    @Override
    public void userEventTriggered(ChannelHandlerContext uctx, Object evt) {
      if (evt instanceof ChannelInputShutdownEvent) {
        uctx.close();
        return;
      }
      uctx.fireUserEventTriggered(evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext uctx, Throwable cause) {
      uctx.close();
    }
  }
}
