package org.egressproxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.nio.charset.StandardCharsets;

/** The proxy's own responses, written as raw bytes (they also go out after the codec is gone). */
public final class HttpResponses {
  private HttpResponses() {}

  /** A complete response with a one-line plain-text body; {@code close} adds Connection: close. */
  public static ByteBuf of(ByteBufAllocator alloc, int status, String reason, String body,
      boolean close, String... extraHeaders) {
    String text = body + "\n";
    byte[] b = text.getBytes(StandardCharsets.UTF_8);
    StringBuilder head = new StringBuilder(160)
        .append("HTTP/1.1 ").append(status).append(' ').append(reason).append("\r\n")
        .append("Content-Type: text/plain; charset=utf-8\r\n")
        .append("Content-Length: ").append(b.length).append("\r\n")
        .append("Cache-Control: no-store\r\n");
    for (String h : extraHeaders) {
      head.append(h).append("\r\n");
    }
    if (close) {
      head.append("Connection: close\r\n");
    }
    head.append("\r\n");
    ByteBuf buf = alloc.buffer(head.length() + b.length);
    buf.writeCharSequence(head, StandardCharsets.ISO_8859_1);
    buf.writeBytes(b);
    return buf;
  }

  /**
   * The same response as an HTTP object, for pipelines where the HTTP codec still encodes what
   * goes out.
   */
  public static io.netty.handler.codec.http.FullHttpResponse full(ByteBufAllocator alloc,
      int status, String reason, String body, boolean close) {
    byte[] b = (body + "\n").getBytes(StandardCharsets.UTF_8);
    io.netty.handler.codec.http.FullHttpResponse r =
        new io.netty.handler.codec.http.DefaultFullHttpResponse(
            io.netty.handler.codec.http.HttpVersion.HTTP_1_1,
            new io.netty.handler.codec.http.HttpResponseStatus(status, reason),
            alloc.buffer(b.length).writeBytes(b));
    r.headers().set("Content-Type", "text/plain; charset=utf-8");
    r.headers().setInt("Content-Length", b.length);
    r.headers().set("Cache-Control", "no-store");
    if (close) {
      r.headers().set("Connection", "close");
    }
    return r;
  }

  /**
   * Refuses a request the HTTP decoder could not read (400; 431 for a head over the limit; 408
   * for a head that took longer than {@code timeouts.requestHead}), logs the decision and closes:
   * after a framing error nothing on the connection can be trusted.
   */
  public static void refuseMalformed(io.netty.channel.ChannelHandlerContext ctx,
      org.egressproxy.net.ProxyRuntime runtime, Throwable failure) {
    org.egressproxy.log.Connection c = org.egressproxy.net.ProxyRuntime.connection(ctx.channel());
    int status;
    String phrase;
    String body;
    if (failure instanceof ProxyHttpCodec.HeadTimeoutException) {
      c.reason = "request-head-timeout";
      status = 408;
      phrase = "Request Timeout";
      body = "egress-proxy: " + failure.getMessage();
    } else if (failure instanceof io.netty.handler.codec.TooLongFrameException) {
      c.reason = "bad-request";
      status = 431;
      phrase = "Request Header Fields Too Large";
      body = "egress-proxy: request head too large (limit 16 KiB)";
    } else {
      c.reason = "bad-request";
      status = 400;
      phrase = "Bad Request";
      body = "egress-proxy: malformed request: " + failure.getMessage();
    }
    runtime.decided(c);
    ctx.writeAndFlush(full(ctx.alloc(), status, phrase, body, true))
        .addListener(io.netty.channel.ChannelFutureListener.CLOSE);
  }

  public static ByteBuf connectionEstablished(ByteBufAllocator alloc) {
    ByteBuf buf = alloc.buffer(39);
    buf.writeCharSequence("HTTP/1.1 200 Connection established\r\n\r\n",
        StandardCharsets.ISO_8859_1);
    return buf;
  }
}
