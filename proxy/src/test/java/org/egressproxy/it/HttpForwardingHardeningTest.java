package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * HTTP forwarding (http-proxy absolute-form and http-host) against a recording origin: attempts
 * that once got a request to the origin undecided or truncated, or made the proxy buffer without
 * bound - each handled now.
 */
class HttpForwardingHardeningTest {
  static EventLoopGroup group;
  /** What the recording origin read, one line per request: "METHOD URI host=H bytes=N". */
  static final List<String> seen = new CopyOnWriteArrayList<>();
  static int originPort;
  /** How long the origin takes to answer a path with "/slow" in it. */
  static final long SLOW_MS = 1500;
  /** The origin's connections open now. */
  static final java.util.concurrent.atomic.AtomicInteger originOpen =
      new java.util.concurrent.atomic.AtomicInteger();

  @BeforeAll
  static void start() {
    group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
    Channel ch = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
        .childHandler(new ChannelInitializer<>() {
          @Override
          protected void initChannel(Channel c) {
            originOpen.incrementAndGet();
            c.closeFuture().addListener(f -> originOpen.decrementAndGet());
            c.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(1 << 20),
                new ChannelInboundHandlerAdapter() {
                  @Override
                  public void channelRead(ChannelHandlerContext ctx, Object msg) {
                    FullHttpRequest req = (FullHttpRequest) msg;
                    String line = req.method() + " " + req.uri() + " host="
                        + req.headers().get(HttpHeaderNames.HOST) + " bytes="
                        + req.content().readableBytes();
                    seen.add(line);
                    req.release();
                    FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                        HttpResponseStatus.OK, Unpooled.copiedBuffer(line + "\n",
                            StandardCharsets.UTF_8));
                    r.headers().setInt(HttpHeaderNames.CONTENT_LENGTH,
                        r.content().readableBytes());
                    if (line.contains("/big-head")) { // a head of 40 KiB
                      r.headers().set("X-Large", "v".repeat(40 << 10));
                    }
                    if (line.contains("/switch")) { // a 101 nobody asked for
                      ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                          HttpResponseStatus.SWITCHING_PROTOCOLS)).addListener(f -> {
                            ctx.pipeline().remove(HttpServerCodec.class);
                            ctx.writeAndFlush(Unpooled.copiedBuffer("other protocol",
                                StandardCharsets.US_ASCII));
                          });
                      r.release();
                      return;
                    }
                    if (line.contains("/never")) { // accepts, reads, never answers
                      r.release();
                      return;
                    }
                    if (line.contains("/slow")) { // an answer that takes SLOW_MS
                      ctx.executor().schedule(() -> ctx.writeAndFlush(r), SLOW_MS,
                          java.util.concurrent.TimeUnit.MILLISECONDS);
                    } else {
                      ctx.writeAndFlush(r);
                    }
                  }
                });
          }
        }).bind(new InetSocketAddress("127.0.0.1", 0)).syncUninterruptibly().channel();
    originPort = ((InetSocketAddress) ch.localAddress()).getPort();
  }

  @AfterAll
  static void stop() {
    group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
  }

  static ProxyFixture proxy(Path dir, String extra, int... ports) {
    return new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(originPort, originPort,
        extra), ports), dir.resolve("decisions.jsonl"));
  }

  /** The usual configuration with more {@code timeouts:} keys ("response: 700ms"). */
  static String withTimeouts(String more) {
    return DataPlaneTest.withPorts(DataPlaneTest.config(originPort, originPort, ""), originPort)
        .replace("clientHello: 2s}", "clientHello: 2s, " + more + "}");
  }

  /** A bodiless GET of {@code path} as the listener wants it (absolute-form or Host). */
  static String get(String listener, String path) {
    return "GET " + target(listener, path) + " HTTP/1.1\r\nHost: " + host(listener)
        + "\r\n\r\n";
  }

  static String target(String listener, String path) {
    return listener.equals("explicit") ? "http://www.allowed.test:" + originPort + path : path;
  }

  static String host(String listener) {
    return listener.equals("explicit") ? "www.allowed.test:" + originPort : "www.allowed.test";
  }

  /**
   * A header that the client's Connection header names is dropped as hop-by-hop - but not
   * Content-Length / Transfer-Encoding, which framed the body: dropped, the body would go
   * upstream unframed and the origin read it as a request of its own, with a Host the proxy
   * never decided on.
   */
  @ParameterizedTest(name = "{0} {1}")
  @CsvSource({"explicit, Content-Length", "http, Content-Length",
      "explicit, Transfer-Encoding", "http, Transfer-Encoding"})
  void aConnectionListedFramingHeaderIsKept(String listener, String framing,
      @TempDir Path dir) throws Exception {
    seen.clear();
    String smuggled = "GET /smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n";
    String body = framing.equals("Content-Length")
        ? "Content-Length: " + smuggled.length() + "\r\n\r\n" + smuggled
        : "Transfer-Encoding: chunked\r\n\r\n" + Integer.toHexString(smuggled.length())
            + "\r\n" + smuggled + "\r\n0\r\n\r\n";
    try (ProxyFixture p = proxy(dir, "", originPort);
        Socket s = DataPlaneTest.socket(p.port(listener))) {
      HttpHalfCloseTest.write(s, "POST " + target(listener, "/upload") + " HTTP/1.1\r\nHost: "
          + host(listener) + "\r\nConnection: keep-alive, " + framing + "\r\n" + body);
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("200|");
      Thread.sleep(500); // let a second request, if any, reach the origin
      assertThat(seen).as("requests the origin read").containsExactly("POST /upload host="
          + host(listener) + " bytes=" + smuggled.length());
    }
  }

  /**
   * A request body to an origin that reads slowly (here: not at all) stays in the sockets, not
   * in the proxy: reading from the client stops while the upstream is not writable. The CONNECT
   * row is the yardstick: the tunnel relay's backpressure, the same kernel buffers.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit absolute-form PUT", "http Host PUT", "explicit CONNECT (control)"})
  void aRequestBodyToAnOriginThatDoesNotReadIsNotBufferedWithoutBound(String how,
      @TempDir Path dir) throws Exception {
    try (java.net.ServerSocket deaf = new java.net.ServerSocket()) {
      deaf.setReceiveBufferSize(64 * 1024);
      deaf.bind(new InetSocketAddress("127.0.0.1", 0));
      List<Socket> held = new CopyOnWriteArrayList<>();
      Thread acceptor = new Thread(() -> {
        try {
          held.add(deaf.accept()); // accepts, never reads
        } catch (java.io.IOException e) {
          // closed
        }
      });
      acceptor.setDaemon(true);
      acceptor.start();
      int port = deaf.getLocalPort();
      String listener = how.split(" ")[0];
      try (ProxyFixture p = new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(port,
          port, ""), port), dir.resolve("decisions.jsonl"));
          SocketChannel c = SocketChannel.open(new InetSocketAddress("127.0.0.1",
              p.port(listener)))) {
        String head;
        if (how.contains("CONNECT")) {
          head = "CONNECT www.allowed.test:" + port + " HTTP/1.1\r\nHost: www.allowed.test:"
              + port + "\r\n\r\n";
        } else {
          String target = listener.equals("explicit") ? "http://www.allowed.test:" + port
              + "/big" : "/big";
          String hostHeader = listener.equals("explicit") ? "www.allowed.test:" + port
              : "www.allowed.test";
          head = "PUT " + target + " HTTP/1.1\r\nHost: " + hostHeader
              + "\r\nContent-Length: " + (1L << 30) + "\r\n\r\n"; // 1 GiB announced
        }
        c.write(ByteBuffer.wrap(head.getBytes(StandardCharsets.US_ASCII)));
        if (how.contains("CONNECT")) {
          c.socket().setSoTimeout(5000);
          byte[] ok = new byte[39];
          c.socket().getInputStream().readNBytes(ok, 0, 39);
          assertThat(new String(ok, StandardCharsets.ISO_8859_1)).startsWith("HTTP/1.1 200");
        }
        c.configureBlocking(false);
        ByteBuffer chunk = ByteBuffer.allocateDirect(256 * 1024);
        long accepted = 0;
        long limit = 192L << 20; // stop at 192 MiB
        long deadline = System.nanoTime() + 8_000_000_000L;
        long lastProgress = System.nanoTime();
        while (accepted < limit && System.nanoTime() < deadline
            && System.nanoTime() - lastProgress < 1_500_000_000L) {
          chunk.clear();
          int n = c.write(chunk);
          if (n > 0) {
            accepted += n;
            lastProgress = System.nanoTime();
          } else {
            Thread.sleep(5);
          }
        }
        for (Socket h : held) {
          h.close();
        }
        // kernel buffers on loopback (client send, proxy receive, proxy send, origin receive)
        // hold some MiB; the proxy itself should hold at most its water mark
        assertThat(accepted >> 20).as("MiB of request body the client got rid of while the"
            + " origin read nothing").isLessThan(48);
      }
    }
  }

  /**
   * A chunked body the decoder cannot read (a bad chunk-size line) ends with a failed
   * LastHttpContent: not forwarded as the body's regular end (the origin would act on a
   * truncated request), but a 400 to the client and the upstream closed.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit", "http"})
  void aMalformedChunkedBodyIsRefusedNotForwarded(String listener,
      @TempDir Path dir) throws Exception {
    seen.clear();
    try (ProxyFixture p = proxy(dir, "", originPort);
        Socket s = DataPlaneTest.socket(p.port(listener))) {
      HttpHalfCloseTest.write(s, "POST " + target(listener, "/upload") + " HTTP/1.1\r\nHost: "
          + host(listener) + "\r\nTransfer-Encoding: chunked\r\n\r\n"
          + "a\r\n0123456789\r\nzz-not-a-chunk-size\r\nrest of the upload\r\n0\r\n\r\n");
      String answer = DataPlaneTest.readResponse(s.getInputStream());
      Thread.sleep(300);
      assertThat(seen).as("requests the origin read").isEmpty();
      assertThat(answer).startsWith("400|");
    }
  }

  static final String GET_THEN_CONNECT = "GET http://www.allowed.test:%1$d/first HTTP/1.1\r\n"
      + "Host: www.allowed.test:%1$d\r\n\r\nCONNECT www.allowed.test:%2$d HTTP/1.1\r\n"
      + "Host: www.allowed.test:%2$d\r\n\r\n";

  /**
   * A CONNECT pipelined behind an absolute-form GET does not overtake it (its 200 would pass
   * for the GET's answer, and the GET's answer be lost): the GET is answered, then the CONNECT
   * refused with 400, and no tunnel is opened.
   */
  @Test
  void aConnectPipelinedBehindAGetIsRefusedAfterTheGetsAnswer(@TempDir Path dir)
      throws Exception {
    seen.clear();
    try (Origins o = new Origins()) {
      Origins.Origin recorder = o.recorder();
      try (ProxyFixture p = proxy(dir, "", originPort, recorder.port);
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        HttpHalfCloseTest.write(s, GET_THEN_CONNECT.formatted(originPort, recorder.port));
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("the GET's answer")
            .startsWith("200|GET /first ");
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("the CONNECT's")
            .startsWith("400|").contains("pipelined");
        assertThat(s.getInputStream().read()).as("closed after the 400").isEqualTo(-1);
        assertThat(recorder.receivedBytes()).as("bytes at the CONNECT's origin").isEmpty();
      }
    }
  }

  /**
   * A CONNECT after an answered GET on the same connection is a tunnel, and the GET's
   * kept-alive upstream, which nothing will use again, is closed then - not left open.
   */
  @Test
  void aConnectAfterAnAnsweredGetClosesTheGetsUpstream(@TempDir Path dir) throws Exception {
    seen.clear();
    try (Origins o = new Origins()) {
      Origins.Origin recorder = o.recorder();
      try (ProxyFixture p = proxy(dir, "", originPort, recorder.port);
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        DataPlaneTest.await("the origin's connections of earlier tests closed",
            () -> originOpen.get() == 0);
        int before = originOpen.get();
        HttpHalfCloseTest.write(s, "GET http://www.allowed.test:" + originPort + "/first"
            + " HTTP/1.1\r\nHost: www.allowed.test:" + originPort + "\r\n\r\n");
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("200|");
        assertThat(originOpen.get()).as("the GET's upstream, kept alive").isEqualTo(before + 1);
        HttpHalfCloseTest.write(s, "CONNECT www.allowed.test:" + recorder.port + " HTTP/1.1\r\n"
            + "Host: www.allowed.test:" + recorder.port + "\r\n\r\n");
        assertThat(DataPlaneTest.readHead(s.getInputStream())).startsWith("HTTP/1.1 200");
        DataPlaneTest.await("the GET's upstream closed once the connection became a tunnel",
            () -> originOpen.get() == before);
      }
    }
  }

  /**
   * A request head pipelined behind a request whose answer takes longer than
   * timeouts.requestHead: the proxy does not read it while it is busy with the first, and that
   * time is not the client's - the second request is answered, not refused 408. A client that
   * stalls its head once the proxy reads again still gets its 408.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit", "http"})
  void aHeadPipelinedBehindASlowAnswerIsNotTimedOut(String listener, @TempDir Path dir)
      throws Exception {
    seen.clear();
    String yaml = withTimeouts("requestHead: 400ms");
    try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"));
        Socket s = DataPlaneTest.socket(p.port(listener))) {
      String second = get(listener, "/second");
      HttpHalfCloseTest.write(s, get(listener, "/slow") + second.substring(0, 10));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("the slow answer")
          .startsWith("200|GET /slow ");
      HttpHalfCloseTest.write(s, second.substring(10));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("the pipelined request")
          .startsWith("200|GET /second ");
      HttpHalfCloseTest.write(s, second.substring(0, 10)); // and then stalls
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("a stalled head")
          .startsWith("408|");
    }
  }

  /**
   * An answer with a 40 KiB head (cookies, policies: origins send larger heads than clients)
   * is relayed; a 101 Switching Protocols the proxy never asked for (it drops Upgrade) is a 502,
   * not a connection left speaking a protocol nobody frames.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit", "http"})
  void largeResponseHeadsPassAndAnUnaskedSwitchIsRefused(String listener, @TempDir Path dir)
      throws Exception {
    seen.clear();
    try (ProxyFixture p = proxy(dir, "", originPort);
        Socket s = DataPlaneTest.socket(p.port(listener))) {
      HttpHalfCloseTest.write(s, get(listener, "/big-head"));
      String head = DataPlaneTest.readHead(s.getInputStream());
      assertThat(head).startsWith("HTTP/1.1 200").contains("v".repeat(40 << 10));
      String len = head.lines().filter(l -> l.toLowerCase().startsWith("content-length:"))
          .findFirst().orElseThrow().substring(15).strip();
      assertThat(new String(s.getInputStream().readNBytes(Integer.parseInt(len)),
          StandardCharsets.UTF_8)).startsWith("GET /big-head ");
      HttpHalfCloseTest.write(s, "GET " + target(listener, "/switch") + " HTTP/1.1\r\nHost: "
          + host(listener) + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("502|")
          .contains("switched protocols");
    }
  }

  /**
   * An origin that reads the request and never answers: after timeouts.response the client
   * gets a 504 saying so, the upstream connection is closed, and the client's connection goes
   * on with its next request. An answer that comes within the limit is not cut.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit", "http"})
  void anOriginThatNeverAnswersIsA504AfterTimeoutsResponse(String listener, @TempDir Path dir)
      throws Exception {
    seen.clear();
    String yaml = withTimeouts("response: 700ms");
    try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"));
        Socket s = DataPlaneTest.socket(p.port(listener))) {
      DataPlaneTest.await("the origin's connections of earlier tests closed",
          () -> originOpen.get() == 0);
      HttpHalfCloseTest.write(s, get(listener, "/never"));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("504|")
          .contains("did not answer within timeouts.response (700ms)");
      DataPlaneTest.await("the silent upstream closed", () -> originOpen.get() == 0);
      HttpHalfCloseTest.write(s, get(listener, "/after"));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("200|GET /after ");
      // The limit counts from each request: one that goes 400 ms after an answered one
      // still gets its whole 700 ms (the connection's one timer looks again, not too early).
      Thread.sleep(400);
      long sent = System.nanoTime();
      HttpHalfCloseTest.write(s, get(listener, "/never-again"));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("504|");
      assertThat((System.nanoTime() - sent) / 1_000_000).as("ms to the 504")
          .isGreaterThanOrEqualTo(650);
    }
    String slow = withTimeouts("response: 3s");
    try (ProxyFixture p = new ProxyFixture(slow, dir.resolve("slow.jsonl"));
        Socket s = DataPlaneTest.socket(p.port(listener))) {
      HttpHalfCloseTest.write(s, get(listener, "/slow"));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("within the limit")
          .startsWith("200|GET /slow ");
    }
  }
}
