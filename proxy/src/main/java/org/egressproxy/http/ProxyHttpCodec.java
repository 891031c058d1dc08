package org.egressproxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ByteProcessor;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.TimeUnit;

/**
 * The HTTP listeners' server codec: Netty's request decoder and response encoder, paired as in
 * Netty's {@code HttpServerCodec} (the encoder knows each request's method, so a response to
 * HEAD has no body), reading requests as strictly as a proxy must (RFC 9112). Netty already
 * fails a bare LF, Content-Length with Transfer-Encoding, two Content-Lengths and a
 * Transfer-Encoding that does not end in chunked; this codec also fails obsolete line folding
 * (which Netty would join), a second {@code Host} header, and every version but HTTP/1.x (an
 * HTTP/2 prior-knowledge preface, {@code PRI * HTTP/2.0}). A failed request carries the reason
 * in its {@code decoderResult()}, and the one refusal path ({@link
 * HttpResponses#refuseMalformed}) answers 400 and closes.
 *
 * <p>It also limits the time to send a request head ({@code timeouts.requestHead}): from the
 * connection's start, then from the first byte of each later request; should it run out while the
 * proxy itself is not reading (busy with an earlier request), it starts again. A client that is
 * too slow gets 408 (a failed request with a {@link HeadTimeoutException}), so a slowloris client
 * holds a connection for that long at most.
 */
public final class ProxyHttpCodec
    extends CombinedChannelDuplexHandler<HttpRequestDecoder, HttpResponseEncoder> {
  /** A request head that did not arrive within {@code timeouts.requestHead}. */
  public static final class HeadTimeoutException extends DecoderException {
    private static final long serialVersionUID = 1L;

    HeadTimeoutException(Duration limit) {
      super("no complete request head within " + limit.toMillis() + " ms");
    }
  }

  /** Methods of the requests read, in order, for the encoder (HEAD, CONNECT). */
  private final Queue<HttpMethod> methods = new ArrayDeque<>();

  public ProxyHttpCodec(int maxInitialLine, int maxHeaderSize, int maxChunk,
      Duration headTimeout) {
    HttpDecoderConfig config = new HttpDecoderConfig()
        .setMaxInitialLineLength(maxInitialLine)
        .setMaxHeaderSize(maxHeaderSize)
        .setMaxChunkSize(maxChunk)
        .setStrictLineParsing(true); // a bare LF ends no line: 400
    init(new Decoder(config, headTimeout, methods), new Encoder());
  }

  /**
   * Stops decoding after what has been read (the request whose credentials are being verified,
   * see {@link ProxyAuthHandler}): what follows stays bytes - a CONNECT's tunnel data is not
   * taken for HTTP - and the client's FIN waits behind them, until {@link #releaseRequests}.
   */
  public void holdRequests() {
    ((Decoder) inboundHandler()).hold = true;
  }

  /** Decodes on: what was held back, then a FIN that came meanwhile. On the event loop. */
  public void releaseRequests() throws Exception {
    ((Decoder) inboundHandler()).release();
  }

  private static final class Decoder extends HttpRequestDecoder {
    private final Duration headTimeout;
    private final Queue<HttpMethod> methods;
    /** See holdRequests. */
    private boolean hold;
    /** The client's FIN while holding: passed on after the bytes before it. */
    private Object heldShutdown;
    /** This decoder's context, for releaseRequests. */
    private ChannelHandlerContext self;
    /** Whether the bytes being read belong to a request head. */
    private boolean inHead = true;
    /** A head's first byte that is not white space (leading CRLFs are skipped) was read. */
    private boolean started;
    private boolean afterLf;
    private boolean folded;
    private boolean timedOut;
    private ScheduledFuture<?> timer;
    private final ByteProcessor scan = b -> {
      if (!started) {
        started = b != '\r' && b != '\n' && b != ' ' && b != '\t';
      } else if (afterLf && (b == ' ' || b == '\t')) {
        folded = true; // a line of the head starts with white space: obs-fold
      }
      afterLf = b == '\n';
      return true;
    };

    Decoder(HttpDecoderConfig config, Duration headTimeout, Queue<HttpMethod> methods) {
      super(config);
      this.headTimeout = headTimeout;
      this.methods = methods;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
      self = ctx;
      super.channelRead(ctx, msg);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
      if (hold && evt instanceof ChannelInputShutdownEvent) {
        heldShutdown = evt; // after the bytes held back, not ahead of them
        return;
      }
      super.userEventTriggered(ctx, evt);
    }

    void release() throws Exception {
      hold = false;
      if (self == null || self.isRemoved()) {
        return; // a tunnel took over: the held bytes went on as bytes
      }
      channelRead(self, Unpooled.EMPTY_BUFFER); // decodes what is held back
      if (!hold && heldShutdown != null) {
        Object evt = heldShutdown;
        heldShutdown = null;
        userEventTriggered(self, evt);
      }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
      startTimer(ctx); // the first request's head: from the connection's start
      super.channelActive(ctx);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out)
        throws Exception {
      if (hold) {
        return; // the bytes stay until releaseRequests, or go on as bytes if removed
      }
      if (timedOut) {
        in.skipBytes(in.readableBytes()); // answered 408 and closing
        return;
      }
      if (inHead && timer == null && in.isReadable()) {
        startTimer(ctx); // a later request's head: from its first byte
      }
      int from = in.readerIndex();
      int before = out.size();
      super.decode(ctx, in, out);
      if (inHead && in.readerIndex() > from) {
        // The decoder consumes a head line by line and returns as soon as the head is complete,
        // so these bytes are head bytes only.
        in.forEachByte(from, in.readerIndex() - from, scan);
      }
      for (int i = before; i < out.size(); i++) {
        Object m = out.get(i);
        if (m instanceof HttpRequest r) {
          check(r);
          methods.add(r.method());
          inHead = false;
          started = false;
          afterLf = false;
          folded = false;
          cancelTimer();
        }
        if (m instanceof LastHttpContent) {
          inHead = true;
        }
      }
    }

    @Override
    protected void decodeLast(ChannelHandlerContext ctx, ByteBuf in, List<Object> out)
        throws Exception {
      if (hold) {
        return; // the connection is gone while a request's credentials were verified
      }
      if (timedOut) {
        in.skipBytes(in.readableBytes()); // answered 408: not also a premature-closure failure
        return;
      }
      super.decodeLast(ctx, in, out);
    }

    private void check(HttpRequest r) {
      if (!r.decoderResult().isSuccess()) {
        return;
      }
      String problem = null;
      if (folded) {
        problem = "obsolete line folding (a header line starting with white space)";
      } else if (r.protocolVersion().majorVersion() != 1) {
        problem = r.protocolVersion() + " is not spoken here: HTTP/1.1 only (an HTTP/2"
            + " prior-knowledge preface is refused)";
      } else if (r.headers().getAll(HttpHeaderNames.HOST).size() > 1) {
        problem = "more than one Host header";
      }
      if (problem != null) {
        r.setDecoderResult(DecoderResult.failure(new IllegalArgumentException(problem)));
      }
    }

    private void startTimer(ChannelHandlerContext ctx) {
      if (timer != null || headTimeout == null) {
        return;
      }
      timer = ctx.executor().schedule(() -> {
        if (!inHead || timedOut || !ctx.channel().isActive()) {
          return;
        }
        if (!ctx.channel().config().isAutoRead()) {
          // The proxy is not reading (an earlier request on the connection is not answered
          // yet, or the client does not read its answer): the head may be in the socket. That
          // time is not the client's: the clock starts again.
          timer = null;
          startTimer(ctx);
          return;
        }
        timedOut = true;
        DefaultHttpRequest late = new DefaultHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET,
            "/bad-request");
        late.setDecoderResult(DecoderResult.failure(new HeadTimeoutException(headTimeout)));
        methods.add(late.method());
        ctx.fireChannelRead(late); // to the refusal path, like any failed request
      }, headTimeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void cancelTimer() {
      if (timer != null) {
        timer.cancel(false);
        timer = null;
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
      cancelTimer();
      super.channelInactive(ctx);
    }

    @Override
    protected void handlerRemoved0(ChannelHandlerContext ctx) throws Exception {
      cancelTimer(); // a CONNECT tunnel took over the connection
      super.handlerRemoved0(ctx);
    }
  }

  /** As Netty's server codec: a HEAD response has no body; a CONNECT 2xx no Transfer-Encoding. */
  private final class Encoder extends HttpResponseEncoder {
    private HttpMethod method;

    @Override
    protected void sanitizeHeadersBeforeEncode(HttpResponse msg, boolean isAlwaysEmpty) {
      if (!isAlwaysEmpty && HttpMethod.CONNECT.equals(method)
          && msg.status().codeClass() == HttpStatusClass.SUCCESS) {
        msg.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
        return;
      }
      super.sanitizeHeadersBeforeEncode(msg, isAlwaysEmpty);
    }

    @Override
    protected boolean isContentAlwaysEmpty(HttpResponse msg) {
      int code = msg.status().code();
      if (code >= 100 && code < 200 && code != 101) {
        // an interim answer (100 Continue): the request's final answer is still to come and
        // is the one that takes its method off the queue - else every later answer on the
        // connection would be paired with the request after its own (a GET's body dropped
        // as a HEAD's)
        return true;
      }
      method = methods.poll();
      return HttpMethod.HEAD.equals(method) || super.isContentAlwaysEmpty(msg);
    }
  }
}
