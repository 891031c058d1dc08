package org.egressproxy.bench.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import java.nio.charset.StandardCharsets;
import org.egressproxy.bench.BenchmarkBase;
import org.egressproxy.net.ProxyServer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Decoding a request head with the decoder and limits of the proxy's HTTP listeners ({@link
 * ProxyServer#MAX_INITIAL_LINE}, {@link ProxyServer#MAX_HEADER_SIZE}, 8 KiB chunks), on one
 * kept-alive {@code EmbeddedChannel}, one request per operation. Heads ({@code head}):
 *
 * <ul>
 *   <li>{@code connect}: {@code CONNECT api.allowed.test:443} with Host and User-Agent (curl);
 *   <li>{@code get}: absolute-form {@code GET http://allowed.test/small} as curl sends it;
 *   <li>{@code browser}: absolute-form GET with a browser's twelve headers and a cookie (~1 KB).
 * </ul>
 *
 * <p>{@code decode} runs {@link HttpRequestDecoder} (the inbound half of the listener's {@link
 * HttpServerCodec}); {@code exchange} runs the listener's whole {@code HttpServerCodec}: the head
 * decoded, then a 200 response head with {@code Content-Length} and its end encoded, as on a
 * kept-alive absolute-form connection (the codec pairs each response with its request, so it
 * cannot decode requests alone). Each read is a pooled buffer filled from the precomputed bytes,
 * as the transport fills one from the socket.
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar HttpHeadBenchmark -prof gc
 * </pre>
 */
@State(Scope.Thread)
public class HttpHeadBenchmark extends BenchmarkBase {
  @Param({"connect", "get", "browser"})
  String head;

  private byte[] bytes;
  private EmbeddedChannel decoder;
  private EmbeddedChannel codec;
  private HttpResponse response;
  private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;

  static String head(String name) {
    return switch (name) {
      case "connect" -> "CONNECT api.allowed.test:443 HTTP/1.1\r\n"
          + "Host: api.allowed.test:443\r\n"
          + "User-Agent: curl/7.88.1\r\n"
          + "Proxy-Connection: Keep-Alive\r\n\r\n";
      case "get" -> "GET http://allowed.test/small HTTP/1.1\r\n"
          + "Host: allowed.test\r\n"
          + "User-Agent: curl/7.88.1\r\n"
          + "Accept: */*\r\n"
          + "Proxy-Connection: Keep-Alive\r\n\r\n";
      case "browser" -> "GET http://www.allowed.test/assets/app.3f9c2b.js?v=20261122 HTTP/1.1\r\n"
          + "Host: www.allowed.test\r\n"
          + "Proxy-Connection: keep-alive\r\n"
          + "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
          + " Chrome/131.0.0.0 Safari/537.36\r\n"
          + "Accept: */*\r\n"
          + "Accept-Encoding: gzip, deflate, br, zstd\r\n"
          + "Accept-Language: en-GB,en;q=0.9,de;q=0.8\r\n"
          + "Referer: http://www.allowed.test/dashboard/overview?tab=usage&range=7d\r\n"
          + "Sec-Fetch-Dest: script\r\n"
          + "Sec-Fetch-Mode: no-cors\r\n"
          + "Sec-Fetch-Site: same-origin\r\n"
          + "Cache-Control: no-cache\r\n"
          + "Cookie: session=6f1c2d9e0b7a4c3f8e5d1a2b3c4d5e6f; theme=dark; consent=analytics%3D0;"
          + " _ga=GA1.2.1234567890.1732233445; _gid=GA1.2.987654321.1732233445;"
          + " csrftoken=Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Ji0HgFeDcBa9876543210zyxw\r\n\r\n";
      default -> throw new IllegalArgumentException(name);
    };
  }

  @Setup(Level.Trial)
  public void setUp() {
    bytes = head(head).getBytes(StandardCharsets.US_ASCII);
    decoder = new EmbeddedChannel(new HttpRequestDecoder(ProxyServer.MAX_INITIAL_LINE,
        ProxyServer.MAX_HEADER_SIZE, 8192));
    codec = new EmbeddedChannel(new HttpServerCodec(ProxyServer.MAX_INITIAL_LINE,
        ProxyServer.MAX_HEADER_SIZE, 8192));
    response = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
    response.headers().set(HttpHeaderNames.CONTENT_LENGTH, 0);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    decoder.finishAndReleaseAll();
    codec.finishAndReleaseAll();
  }

  private HttpRequest decodeOne(EmbeddedChannel ch) {
    ByteBuf read = alloc.ioBuffer(2048);
    read.writeBytes(bytes);
    ch.pipeline().fireChannelRead(read);
    ch.pipeline().fireChannelReadComplete();
    HttpRequest req = (HttpRequest) ch.inboundMessages().poll();
    Object last = ch.inboundMessages().poll();
    if (req == null || !req.decoderResult().isSuccess() || !(last instanceof LastHttpContent l)) {
      throw new IllegalStateException("not decoded: " + req);
    }
    l.release();
    return req;
  }

  @Benchmark
  public void decode(Blackhole bh) {
    HttpRequest req = decodeOne(decoder);
    bh.consume(req.uri());
    bh.consume(req.headers().get(HttpHeaderNames.HOST));
  }

  @Benchmark
  public void exchange(Blackhole bh) {
    HttpRequest req = decodeOne(codec);
    bh.consume(req.uri());
    bh.consume(req.headers().get(HttpHeaderNames.HOST));
    codec.write(response, codec.voidPromise());
    codec.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT, codec.voidPromise());
    ByteBuf out;
    while ((out = (ByteBuf) codec.outboundMessages().poll()) != null) {
      bh.consume(out.readableBytes());
      out.release();
    }
  }
}
