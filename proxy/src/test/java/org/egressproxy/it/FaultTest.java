package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.egressproxy.NettyLeakCheck;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Faults around the proxy, on real sockets: an upstream that resets mid-stream, one that accepts
 * and never reads, a name server that never answers, and a decision log on a full or read-only
 * filesystem. After each: the proxy serves the next client, Netty reports no leaked buffer, and
 * {@code /healthz} answers 200.
 */
class FaultTest {
  static TestDns silentDns;

  @BeforeAll
  static void dns() {
    silentDns = new TestDns(Map.of(), true);
  }

  @AfterAll
  static void stop() {
    silentDns.close();
  }

  static String yaml(int port, String extra) {
    return yaml(port, "2s", extra);
  }

  static String yaml(int port, String connectTimeout, String extra) {
    return """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
        policy:
          rules:
            - {allow: "*.allowed.test", ports: [%1$d, 443]}
          allowDestinationCidrs: [127.0.0.1/32]
        resolver:
          hosts: {www.allowed.test: 127.0.0.1}
          servers: ["%2$s"]
        timeouts: {dns: 1s, connect: %3$s}
        %4$s
        """.formatted(port, silentDns.address(), connectTimeout, extra);
  }

  /** The proxy still serves, nothing leaked, /healthz is 200. */
  static void stillHealthy(ProxyFixture p, String after) throws Exception {
    DataPlaneTest.await("every client connection of '" + after + "' closed",
        () -> p.server.runtime().limits().open() == 0);
    try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
      assertThat(DataPlaneTest.connect(s, "evil.example:443")).contains(" 403 ");
    }
    assertThat(p.admin("/healthz")).isEqualTo("200 ok\n");
    NettyLeakCheck.assertNoLeaks(after);
  }

  static ServerSocket origin() throws IOException {
    return new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
  }

  static Thread daemon(String name, Runnable r) {
    Thread t = new Thread(r, name);
    t.setDaemon(true);
    t.start();
    return t;
  }

  @Test
  void anUpstreamThatResetsMidStream(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      daemon("resetting-origin", () -> {
        try (Socket s = origin.accept()) {
          s.getInputStream().readNBytes(5);
          s.getOutputStream().write(new byte[256 * 1024]);
          s.setSoLinger(true, 0); // close with a RST, mid-stream
        } catch (IOException e) {
          // the test fails on the client side
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(origin.getLocalPort(), ""),
          dir.resolve("decisions.jsonl"))) {
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + origin.getLocalPort()))
              .contains(" 200 ");
          s.getOutputStream().write("hello".getBytes(StandardCharsets.US_ASCII));
          long got = 0;
          try {
            InputStream in = s.getInputStream();
            byte[] buf = new byte[65536];
            int n;
            while ((n = in.read(buf)) > 0) {
              got += n;
            }
          } catch (IOException reset) {
            // passed on as a reset: also an end
          }
          assertThat(got).isLessThanOrEqualTo(256 * 1024);
        }
        stillHealthy(p, "an upstream reset");
        assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
            .contains("\"event\":\"close\"").contains("\"bytesUp\":5,"));
      }
    }
  }

  static long allocatorMemory() {
    var m = ((ByteBufAllocatorMetricProvider) ByteBufAllocator.DEFAULT).metric();
    return m.usedDirectMemory() + m.usedHeapMemory();
  }

  @Test
  void anUpstreamThatNeverReadsStopsTheClientAndBoundsTheProxysMemory(@TempDir Path dir)
      throws Exception {
    try (ServerSocket origin = new ServerSocket()) {
      origin.setReceiveBufferSize(64 * 1024);
      origin.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      Socket[] held = new Socket[1];
      daemon("deaf-origin", () -> {
        try {
          held[0] = origin.accept(); // and never read
        } catch (IOException e) {
          // closed by the test
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(origin.getLocalPort(), ""),
          dir.resolve("decisions.jsonl"))) {
        long before = allocatorMemory();
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          s.setSendBufferSize(64 * 1024);
          assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + origin.getLocalPort()))
              .contains(" 200 ");
          long limit = 512L * 1024 * 1024;
          AtomicLong written = writeUntilBlocked(s.getOutputStream(), limit);
          assertThat(written.get()).as("what the client could push before it was stopped")
              .isLessThan(64L * 1024 * 1024);
          long proxyHeld = allocatorMemory() - before;
          // The proxy holds at most its write-buffer high water mark and one read for the deaf
          // upstream; the allocator works in chunks, so allow a few of them.
          assertThat(proxyHeld).as("buffer memory the proxy holds").isLessThan(8L * 1024 * 1024);
        }
        if (held[0] != null) {
          held[0].close();
        }
        stillHealthy(p, "an upstream that never reads");
      }
    }
  }

  /**
   * A client that sends its tunnel's bytes right behind the CONNECT, while the upstream is still
   * connecting (the origin's accept queue is full, so the kernel drops the proxy's SYN until it
   * has room): the proxy reads ahead only so far, then holds the client; once the connection is
   * up every byte arrives, in order.
   */
  @Test
  void aClientThatSendsBeforeThe200IsHeldUntilTheUpstreamConnects(@TempDir Path dir)
      throws Exception {
    try (ServerSocket origin = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      java.util.List<Socket> queued = fillAcceptQueue(origin);
      try {
        String yaml = yaml(origin.getLocalPort(), "20s", "");
        try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"));
            Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          long before = allocatorMemory();
          s.setSendBufferSize(64 * 1024);
          long total = 16L * 1024 * 1024;
          OutputStream out = s.getOutputStream();
          out.write(("CONNECT www.allowed.test:" + origin.getLocalPort() + " HTTP/1.1\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
          AtomicLong written = writeUntilBlocked(out, total);
          assertThat(written.get()).as("what the client could push before the 200")
              .isLessThan(total);
          assertThat(allocatorMemory() - before).as("buffer memory the proxy holds")
              .isLessThan(8L * 1024 * 1024); // allocator chunks; unbounded, it is over 16 MiB

          for (Socket q : queued) { // room in the accept queue: the next SYN gets through
            origin.accept().close();
          }
          origin.setSoTimeout(20_000);
          try (Socket up = origin.accept()) {
            assertThat(DataPlaneTest.readHead(s.getInputStream())).startsWith(
                "HTTP/1.1 200 ");
            InputStream in = up.getInputStream();
            byte[] buf = new byte[64 * 1024];
            long got = 0;
            int n;
            while (got < total && (n = in.read(buf)) > 0) {
              for (int i = 0; i < n; i++) {
                if (buf[i] != pattern(got + i)) {
                  throw new AssertionError("byte " + (got + i) + " out of order");
                }
              }
              got += n;
            }
            assertThat(got).isEqualTo(total);
          }
        }
      } finally {
        for (Socket q : queued) {
          q.close();
        }
      }
    }
  }

  /**
   * Clients that leave (reset) while the proxy connects to their upstream (the origin's accept
   * queue is full, so the connects wait): a CONNECT, an absolute-form GET and a transparent
   * ClientHello. The connects are dropped there and then - once the origin has room again no
   * connection arrives - and each allowed decision is still logged and counted, with its close
   * line (nothing relayed).
   */
  @Test
  void clientsThatLeaveWhileTheUpstreamConnectsStopTheConnectAndAreLogged(@TempDir Path dir)
      throws Exception {
    try (ServerSocket origin = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      int port = origin.getLocalPort();
      java.util.List<Socket> queued = fillAcceptQueue(origin);
      try {
        String yaml = """
            listeners:
              - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
              - {name: sni, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %d}
            policy:
              rules:
                - {allow: "*.allowed.test", ports: [%d]}
              allowDestinationCidrs: [127.0.0.1/32]
            resolver:
              hosts: {a.allowed.test: 127.0.0.1, b.allowed.test: 127.0.0.1,
                      c.allowed.test: 127.0.0.1}
            timeouts: {connect: 20s}
            """.formatted(port, port);
        try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"))) {
          askAndReset(p, port, "a", "b", "c"); // the connects wait in the origin's backlog
          DataPlaneTest.await("the clients to be gone",
              () -> p.server.runtime().limits().open() == 0);
          for (Socket q : queued) { // room in the accept queue: a SYN would get through now
            origin.accept().close();
          }
          origin.setSoTimeout(3_000); // past the SYN retransmits (1 s, then 3 s after the first)
          assertThatThrownBy(() -> origin.accept().close())
              .as("a connection to the origin after the clients left")
              .isInstanceOf(java.net.SocketTimeoutException.class);
          allowedAndClosedWithoutUpstream(p.closeAndReadLog(), "a", "b", "c");
        }
      } finally {
        for (Socket q : queued) {
          q.close();
        }
      }
    }
  }

  /**
   * tls-sni with a slow name server (answers after 1.2 s; timeouts.clientHello 700 ms): the
   * ClientHello was whole in time, so the lookup's own time does not end the connection; and
   * a record the client sends behind the hello while the name is looked up (early data, a
   * change_cipher_spec) reaches the origin after it, not dropped.
   */
  @Test
  void bytesBehindAClientHelloWaitForASlowLookup(@TempDir Path dir) throws Exception {
    try (Origins o = new Origins();
        TestDns slow = new TestDns(Map.of("h.allowed.test", List.of("127.0.0.1")), false,
            1200)) {
      Origins.Origin recorder = o.recorder();
      String yaml = """
          listeners:
            - {name: sni, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %1$d}
          policy:
            rules:
              - {allow: "*.allowed.test", ports: [%1$d]}
            allowDestinationCidrs: [127.0.0.1/32]
          resolver:
            servers: ["%2$s"]
          timeouts: {dns: 5s, clientHello: 700ms}
          """.formatted(recorder.port, slow.address());
      try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"));
          Socket s = DataPlaneTest.socket(p.port("sni"))) {
        byte[] hello = ClientHellos.records(ClientHellos.handshake("h.allowed.test",
            List.of("h2"), 32, false), 1);
        byte[] ccs = {20, 3, 3, 0, 1, 1};
        s.getOutputStream().write(hello);
        DataPlaneTest.await("the name server asked", () -> slow.queries.get() >= 1);
        s.getOutputStream().write(ccs);
        s.shutdownOutput();
        assertThat(DataPlaneTest.line(s.getInputStream())).as("the origin's count")
            .isEqualTo("got " + (hello.length + ccs.length));
        ByteArrayOutputStream want = new ByteArrayOutputStream();
        want.writeBytes(hello);
        want.writeBytes(ccs);
        assertThat(recorder.receivedBytes()).isEqualTo(want.toByteArray());
        s.close();
        assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
            .contains("\"event\":\"close\"")
            .contains("\"bytesUp\":" + (hello.length + ccs.length)));
      }
    }
  }

  /**
   * Clients that reset while their name is still being looked up (a name server that answers
   * after 1.5 s): a CONNECT, an absolute-form GET and a transparent ClientHello. The lookups are
   * dropped: the origin never sees a connection, and each allowed decision is still logged and
   * counted, with its close line.
   */
  @Test
  void clientsThatLeaveDuringTheLookupCostTheOriginNothing(@TempDir Path dir) throws Exception {
    java.util.List<String> loopback = java.util.List.of("127.0.0.1");
    try (ServerSocket origin = new ServerSocket(0, 8, InetAddress.getLoopbackAddress());
        TestDns slow = new TestDns(java.util.Map.of("e.allowed.test", loopback,
            "f.allowed.test", loopback, "g.allowed.test", loopback), false, 1500)) {
      int port = origin.getLocalPort();
      String yaml = """
          listeners:
            - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
            - {name: sni, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %1$d}
          policy:
            rules:
              - {allow: "*.allowed.test", ports: [%1$d]}
            allowDestinationCidrs: [127.0.0.1/32]
          resolver:
            servers: ["%2$s"]
          timeouts: {dns: 5s}
          """.formatted(port, slow.address());
      try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"))) {
        askAndReset(p, port, "e", "f", "g"); // the name server has not answered yet
        DataPlaneTest.await("the name server to be asked for all three",
            () -> slow.queries.get() >= 3);
        origin.setSoTimeout(3_000); // past the answers (1.5 s after each query)
        assertThatThrownBy(() -> origin.accept().close())
            .as("a connection to the origin after the clients left")
            .isInstanceOf(java.net.SocketTimeoutException.class);
        allowedAndClosedWithoutUpstream(p.closeAndReadLog(), "e", "f", "g");
      }
    }
  }

  /**
   * Through {@code p}: a CONNECT to {@code HOST1.allowed.test}, an absolute-form GET for
   * {@code HOST2...} and a ClientHello for {@code HOST3...} (on its {@code sni} listener), each
   * client reset 200 ms after its request, once decided (a FIN could be a half-close, and wait).
   */
  static void askAndReset(ProxyFixture p, int port, String... hosts) throws IOException {
    byte[][] sends = {
        ("CONNECT " + hosts[0] + ".allowed.test:" + port + " HTTP/1.1\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII),
        ("GET http://" + hosts[1] + ".allowed.test:" + port + "/abandoned HTTP/1.1\r\nHost: "
            + hosts[1] + ".allowed.test:" + port + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII),
        ClientHellos.records(ClientHellos.handshake(hosts[2] + ".allowed.test",
            java.util.List.of("h2"), 32, false), 1)};
    String[] listeners = {"explicit", "explicit", "sni"};
    for (int i = 0; i < sends.length; i++) {
      try (Socket s = DataPlaneTest.socket(p.port(listeners[i]))) {
        s.getOutputStream().write(sends[i]);
        sleep(200);
        s.setSoLinger(true, 0);
      }
    }
  }

  /** Each {@code HOST.allowed.test}: an allow decision without upstream, then its close line. */
  static void allowedAndClosedWithoutUpstream(java.util.List<String> log, String... hosts) {
    for (String host : hosts) {
      assertThat(log).as("the log for %s.allowed.test", host)
          .filteredOn(l -> l.contains("\"host\":\"" + host + ".allowed.test\""))
          .satisfiesExactly(
              l -> assertThat(l).contains("\"event\":\"decision\"")
                  .contains("\"decision\":\"allow\"").doesNotContain("\"upstream\""),
              l -> assertThat(l).contains("\"event\":\"close\"").contains("\"bytesUp\":0,"));
    }
  }

  /**
   * An absolute-form request whose client resets while the origin has not answered: the
   * exchange still gets its close line (it ends there), and the upstream connection is closed.
   */
  @Test
  void anHttpExchangeTheClientWalksOutOfIsClosedAndLogged(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
      int port = origin.getLocalPort();
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"))) {
        Socket s = DataPlaneTest.socket(p.port("explicit"));
        s.getOutputStream().write(("GET http://www.allowed.test:" + port + "/slow HTTP/1.1\r\n"
            + "Host: www.allowed.test:" + port + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        origin.setSoTimeout(10_000);
        try (Socket up = origin.accept()) {
          up.setSoTimeout(10_000);
          assertThat(DataPlaneTest.readHead(up.getInputStream())).startsWith("GET /slow ");
          s.setSoLinger(true, 0);
          s.close(); // a reset, the answer not begun
          assertThat(up.getInputStream().read()).as("the upstream connection closed").isEqualTo(-1);
        }
        allowedThenClosed(p, "\"bytesDown\":0,");
      }
    }
  }

  /**
   * The kernel hands out the lowest free file descriptor, so an upstream connection opened just
   * after another closed gets its number. When both happen while the event loop works through
   * one batch of epoll events, an event of the closed socket still later in that batch went to
   * the new one: a FIN the origin sent on the old connection closed the new connection while it
   * connected (a 502, "connect failed: ClosedChannelException"; found by ChaosTest). Here: the
   * client's request for another host (the old upstream is closed, a new one connected) and the
   * origin's FIN on the old connection arrive while the event loop is held, in that order.
   */
  @Test
  void anUpstreamOpenedWhereAnotherJustClosedIsNotClosedByItsEvents(@TempDir Path dir)
      throws Exception {
    Assumptions.assumeTrue(io.netty.channel.epoll.Epoll.isAvailable(),
        "native epoll is not available here: " + io.netty.channel.epoll.Epoll.unavailabilityCause());
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      origin.setSoTimeout(10_000);
      String yaml = yaml(port, "").replace("hosts: {www.allowed.test: 127.0.0.1}",
          "hosts: {www.allowed.test: 127.0.0.1, api.allowed.test: 127.0.0.1}");
      try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"),
              org.egressproxy.net.Transport.select());
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        String get = "GET http://%1$s:" + port + "/ HTTP/1.1\r\nHost: %1$s:" + port
            + "\r\n\r\n";
        s.getOutputStream().write(get.formatted("www.allowed.test")
            .getBytes(StandardCharsets.US_ASCII));
        try (Socket old = origin.accept()) {
          DataPlaneTest.readHead(old.getInputStream());
          old.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nold"
              .getBytes(StandardCharsets.US_ASCII));
          assertThat(DataPlaneTest.readResponse(s.getInputStream())).isEqualTo("200|old");
          io.netty.channel.Channel client = p.server.clientChannels().iterator().next();
          java.util.concurrent.CountDownLatch held = new java.util.concurrent.CountDownLatch(1);
          client.eventLoop().execute(() -> {
            held.countDown();
            sleep(400); // the loop is held: what follows is one batch of events when it wakes
          });
          held.await();
          s.getOutputStream().write(get.formatted("api.allowed.test")
              .getBytes(StandardCharsets.US_ASCII));
          sleep(100);
          old.shutdownOutput(); // the origin's FIN on the connection about to be closed
          try (Socket fresh = origin.accept()) {
            DataPlaneTest.readHead(fresh.getInputStream());
            fresh.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew"
                .getBytes(StandardCharsets.US_ASCII));
            assertThat(DataPlaneTest.readResponse(s.getInputStream())).isEqualTo("200|new");
          }
        }
      }
    }
  }

  /** {@code n} times a {@code decision allow} line followed by its {@code close allow}. */
  private static List<String> decidedAndClosed(int n) {
    List<String> lines = new java.util.ArrayList<>();
    for (int i = 0; i < n; i++) {
      lines.add("decision allow");
      lines.add("close allow");
    }
    return lines;
  }

  /**
   * Once the client is gone: one allowed decision for www.allowed.test and its close line,
   * which contains {@code closeHas}.
   */
  static void allowedThenClosed(ProxyFixture p, String closeHas) throws Exception {
    DataPlaneTest.await("the client to be gone", () -> p.server.runtime().limits().open() == 0);
    assertThat(p.closeAndReadLog()).filteredOn(l -> l.contains("www.allowed.test"))
        .satisfiesExactly(
            l -> assertThat(l).contains("\"event\":\"decision\"")
                .contains("\"decision\":\"allow\""),
            l -> assertThat(l).contains("\"event\":\"close\"").contains(closeHas));
  }

  /**
   * An origin that resets or sends its FIN after a request, or answers with something that is
   * not HTTP: the client gets a 502 that says which, on a connection that stays open. An origin
   * that closes a connection the proxy reuses, as the request reaches it: a bodiless GET is sent
   * again on a new connection; a POST is not, and the client's connection is closed without an
   * answer, as the origin's would have been (the client decides whether to send it again). One
   * that closes an idle kept-alive connection: the next request goes on a new connection.
   */
  @Test
  void anOriginThatFailsBeforeItsAnswerGetsA502(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      java.util.concurrent.CompletableFuture<Integer> garbageEnd =
          new java.util.concurrent.CompletableFuture<>();
      daemon("failing-origin", () -> {
        try {
          Socket reset = origin.accept();
          DataPlaneTest.readHead(reset.getInputStream());
          reset.setSoLinger(true, 0);
          reset.close();
          Socket fin = origin.accept();
          DataPlaneTest.readHead(fin.getInputStream());
          fin.shutdownOutput(); // a FIN, no answer
          fin.getInputStream().read();
          fin.close();
          Socket garbage = origin.accept();
          DataPlaneTest.readHead(garbage.getInputStream());
          garbage.getOutputStream().write("SSH-2.0-OpenSSH_9.2p1\r\n".getBytes(
              StandardCharsets.US_ASCII));
          garbage.setSoTimeout(10_000);
          garbageEnd.complete(garbage.getInputStream().read());
          garbage.close();
          Socket reused = origin.accept();
          DataPlaneTest.readHead(reused.getInputStream());
          reused.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
              .getBytes(StandardCharsets.US_ASCII));
          DataPlaneTest.readHead(reused.getInputStream()); // the next request: closed unanswered
          reused.close();
          Socket again = origin.accept(); // the same GET, sent again on a new connection
          assertThat(DataPlaneTest.readHead(again.getInputStream())).startsWith("GET /again ");
          again.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"
              .getBytes(StandardCharsets.US_ASCII));
          DataPlaneTest.readHead(again.getInputStream()); // a POST: closed unanswered, not resent
          again.close();
          Socket idle = origin.accept(); // answers, then closes while idle
          DataPlaneTest.readHead(idle.getInputStream());
          idle.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nidle"
              .getBytes(StandardCharsets.US_ASCII));
          idle.close();
          Socket fresh = origin.accept();
          DataPlaneTest.readHead(fresh.getInputStream());
          fresh.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"
              .getBytes(StandardCharsets.US_ASCII));
          fresh.close();
        } catch (IOException e) {
          garbageEnd.completeExceptionally(e);
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"));
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        InputStream in = s.getInputStream();
        String get = "GET http://www.allowed.test:" + port + "/%s HTTP/1.1\r\nHost: "
            + "www.allowed.test:" + port + "\r\n\r\n";
        s.getOutputStream().write(get.formatted("reset").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(in)).isEqualTo("502|egress-proxy: GET "
            + "www.allowed.test:" + port + " failed: the upstream closed the connection before"
            + " answering\n");
        s.getOutputStream().write(get.formatted("fin").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(in)).isEqualTo("502|egress-proxy: GET "
            + "www.allowed.test:" + port + " failed: the upstream closed the connection before"
            + " answering\n");
        s.getOutputStream().write(get.formatted("garbage").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(in)).startsWith("502|egress-proxy: GET "
            + "www.allowed.test:" + port + " failed: the upstream answered with something that is"
            + " not HTTP/1.1 (");
        assertThat(garbageEnd.get(10, java.util.concurrent.TimeUnit.SECONDS))
            .as("the proxy closed the connection that answered garbage").isEqualTo(-1);
        s.getOutputStream().write(get.formatted("ok").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(in)).isEqualTo("200|ok");
        s.getOutputStream().write(get.formatted("again").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(in)).as("sent again on a new connection")
            .isEqualTo("200|again");
        s.getOutputStream().write(("POST http://www.allowed.test:" + port + "/post HTTP/1.1\r\n"
            + "Host: www.allowed.test:" + port + "\r\nContent-Length: 2\r\n\r\nhi")
            .getBytes(StandardCharsets.US_ASCII));
        assertThat(in.read()).as("the client's connection closed, nothing answered")
            .isEqualTo(-1);
        try (Socket s2 = DataPlaneTest.socket(p.port("explicit"))) {
          s2.getOutputStream().write(get.formatted("idle").getBytes(StandardCharsets.US_ASCII));
          assertThat(DataPlaneTest.readResponse(s2.getInputStream())).isEqualTo("200|idle");
          sleep(300); // the origin's FIN on the idle connection arrives meanwhile
          s2.getOutputStream().write(get.formatted("fresh").getBytes(StandardCharsets.US_ASCII));
          assertThat(DataPlaneTest.readResponse(s2.getInputStream()))
              .as("a new connection, not the one the origin closed").isEqualTo("200|fresh");
        }
        DataPlaneTest.await("the client to be gone", () -> p.server.runtime().limits().open() == 0);
        // Per client connection, in order: a decision and a close line for each of the six
        // exchanges on the first and the two on the second (the first connection's last close
        // line may come after the second's first decision: they are different connections).
        java.util.Map<String, List<String>> byClient = new java.util.LinkedHashMap<>();
        for (String l : p.closeAndReadLog()) {
          if (l.contains("www.allowed.test")) {
            byClient.computeIfAbsent(l.replaceAll(".*\"client\":\"([^\"]+)\".*", "$1"),
                k -> new java.util.ArrayList<>())
                .add(l.replaceAll(".*\"event\":\"(\\w+)\".*\"decision\":\"(\\w+)\".*",
                    "$1 $2"));
          }
        }
        assertThat(byClient.values()).containsExactly(decidedAndClosed(6), decidedAndClosed(2));
      }
    }
  }

  /**
   * Legal but less common answers, to requests pipelined on one connection: a 100 Continue
   * before a final answer (it used to take the request's place in the queue that pairs answers
   * with requests, so the next answer was taken for the HEAD's after it and its body dropped),
   * and a body delimited by the origin closing (its connection was then reused for the next
   * request, which was lost).
   */
  @Test
  void interimAnswersAndCloseDelimitedBodiesKeepPipelinedAnswersInOrder(@TempDir Path dir)
      throws Exception {
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      origin.setSoTimeout(10_000);
      daemon("odd-origin", () -> {
        try (Socket first = origin.accept()) {
          InputStream in = new java.io.BufferedInputStream(first.getInputStream());
          OutputStream out = first.getOutputStream();
          DataPlaneTest.readHead(in); // GET /continue
          out.write(("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3"
              + "\r\n\r\nabc").getBytes(StandardCharsets.US_ASCII));
          DataPlaneTest.readHead(in); // HEAD /head
          out.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
              .getBytes(StandardCharsets.US_ASCII));
          DataPlaneTest.readHead(in); // GET /until-close
          out.write("HTTP/1.1 200 OK\r\n\r\nuntil-close".getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
          return;
        }
        try (Socket second = origin.accept()) {
          DataPlaneTest.readHead(second.getInputStream()); // GET /after
          second.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"
              .getBytes(StandardCharsets.US_ASCII));
          second.getInputStream().read();
        } catch (IOException e) {
          // the test fails on the client side
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"));
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        String request = "%s http://www.allowed.test:" + port + "/%s HTTP/1.1\r\nHost: "
            + "www.allowed.test:" + port + "\r\n\r\n";
        s.getOutputStream().write((request.formatted("GET", "continue")
            + request.formatted("HEAD", "head") + request.formatted("GET", "until-close")
            + request.formatted("GET", "after")).getBytes(StandardCharsets.US_ASCII));
        InputStream in = new java.io.BufferedInputStream(s.getInputStream());
        assertThat(DataPlaneTest.readHead(in)).startsWith("HTTP/1.1 100 ");
        assertThat(DataPlaneTest.readResponse(in)).isEqualTo("200|abc");
        assertThat(DataPlaneTest.readHead(in)).startsWith("HTTP/1.1 200 ")
            .containsIgnoringCase("content-length: 5"); // the HEAD's: no body follows
        String head = DataPlaneTest.readHead(in);
        assertThat(head).startsWith("HTTP/1.1 200 ").containsIgnoringCase("chunked");
        assertThat(ChaosTest.body(in, head)).isEqualTo("until-close".length());
        assertThat(DataPlaneTest.readResponse(in)).isEqualTo("200|after");
      }
    }
  }

  /**
   * An origin that answers before the request's body is all there (a 413, a 401) and then waits
   * for the rest of it: the proxy drops the rest and does not reuse that connection - it was
   * reused, and the origin read the client's next request as the end of the body, answering
   * nothing (the client waited until its timeout).
   */
  @Test
  void anAnswerBeforeTheWholeBodyEndsThatUpstreamConnection(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      origin.setSoTimeout(10_000);
      java.util.concurrent.CompletableFuture<String> afterTheAnswer =
          new java.util.concurrent.CompletableFuture<>();
      daemon("early-origin", () -> {
        try (Socket early = origin.accept()) {
          early.setSoTimeout(10_000);
          InputStream in = early.getInputStream();
          assertThat(DataPlaneTest.readHead(in)).startsWith("POST /upload ");
          early.getOutputStream().write(("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4"
              + "\r\n\r\nbig!").getBytes(StandardCharsets.US_ASCII));
          ByteArrayOutputStream rest = new ByteArrayOutputStream();
          try {
            in.transferTo(rest); // what it gets on that connection until the proxy closes it
          } catch (IOException e) {
            // closed with a reset: also an end
          }
          afterTheAnswer.complete(rest.toString(StandardCharsets.ISO_8859_1));
          try (Socket next = origin.accept()) {
            assertThat(DataPlaneTest.readHead(next.getInputStream())).startsWith("GET /next ");
            next.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .getBytes(StandardCharsets.US_ASCII));
            next.getInputStream().read();
          }
        } catch (IOException | AssertionError e) {
          afterTheAnswer.completeExceptionally(e);
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"));
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        String authority = "www.allowed.test:" + port;
        s.getOutputStream().write(("POST http://" + authority + "/upload HTTP/1.1\r\nHost: "
            + authority + "\r\nContent-Length: 20000\r\n\r\n").getBytes(
            StandardCharsets.US_ASCII));
        s.getOutputStream().write(new byte[1000]);
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).isEqualTo("413|big!");
        s.getOutputStream().write(new byte[19_000]); // the rest of the body, after the answer
        s.getOutputStream().write(("GET http://" + authority + "/next HTTP/1.1\r\nHost: "
            + authority + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).isEqualTo("200|ok");
        assertThat(afterTheAnswer.get(10, java.util.concurrent.TimeUnit.SECONDS))
            .as("the first connection saw no part of the next request").doesNotContain("GET");
      }
    }
  }

  /**
   * An answer that comes before the request's body is all there, on a connection that closes
   * after it (HTTP/1.0 here): the client gets the answer, may send the rest of its body (read
   * and dropped), then the end. Closed at once, with the body unread, the connection was reset
   * under the client's writes - and a reset can destroy an answer the client has not read yet.
   */
  @Test
  void anEarlyAnswerOnAClosingConnectionIsNotLostToAReset(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      origin.setSoTimeout(10_000);
      daemon("early-origin", () -> {
        try (Socket up = origin.accept()) {
          DataPlaneTest.readHead(up.getInputStream());
          up.getOutputStream().write(("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
              + "\r\nbig!").getBytes(StandardCharsets.US_ASCII));
          sleep(3000); // reads nothing more
        } catch (IOException e) {
          // the test fails on the client side
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"));
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        int size = 8 << 20;
        s.getOutputStream().write(("POST http://www.allowed.test:" + port + "/upload HTTP/1.0\r\n"
            + "Content-Length: " + size + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        java.util.concurrent.CompletableFuture<String> upload =
            new java.util.concurrent.CompletableFuture<>();
        daemon("uploader", () -> {
          try {
            byte[] chunk = new byte[64 * 1024];
            for (int sent = 0; sent < size; sent += chunk.length) {
              s.getOutputStream().write(chunk);
            }
            upload.complete("sent whole");
          } catch (IOException e) {
            upload.complete(e.toString());
          }
        });
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).isEqualTo("413|big!");
        assertThat(upload.get(10, java.util.concurrent.TimeUnit.SECONDS))
            .as("the rest of the body, read and dropped, not refused with a reset")
            .isEqualTo("sent whole");
        assertThat(s.getInputStream().read()).as("then the end").isEqualTo(-1);
      }
    }
  }

  /**
   * An HTTP/1.0 client knows no chunked coding: an answer the origin sends chunked, or delimits
   * by closing, reaches it as the plain body, ended by the proxy closing the connection (it was
   * sent chunked, framing and all, into the client's body).
   */
  @Test
  void anHttp10ClientGetsNoChunkedCoding(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      origin.setSoTimeout(10_000);
      daemon("chunking-origin", () -> {
        for (String answer : new String[] {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\nuntil-close"}) {
          try (Socket up = origin.accept()) {
            DataPlaneTest.readHead(up.getInputStream());
            up.getOutputStream().write(answer.getBytes(StandardCharsets.US_ASCII));
            if (answer.contains("chunked")) {
              up.setSoTimeout(10_000);
              up.getInputStream().read(); // kept alive until the proxy lets it go
            }
          } catch (IOException e) {
            return;
          }
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"))) {
        for (String[] expected : new String[][] {{"chunked", "hello"}, {"close", "until-close"}}) {
          try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
            s.getOutputStream().write(("GET http://www.allowed.test:" + port + "/" + expected[0]
                + " HTTP/1.0\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            String all = new String(s.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
            assertThat(all).startsWith("HTTP/1.1 200 ").doesNotContainIgnoringCase("chunked")
                .endsWith("\r\n\r\n" + expected[1]);
          }
        }
      }
    }
  }

  /**
   * A client that resets its CONNECT tunnel before sending anything ends an allowed tunnel: a
   * close line, not a second decision refusing it as a bad request (which the tunnel's SNI
   * check, waiting for the first bytes, used to write for any error).
   */
  @Test
  void aTunnelClientThatResetsIsClosedNotRefused(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      int port = origin.getLocalPort();
      try (ProxyFixture p = new ProxyFixture(yaml(port, ""), dir.resolve("decisions.jsonl"))) {
        Socket s = DataPlaneTest.socket(p.port("explicit"));
        assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + port)).contains(" 200 ");
        origin.setSoTimeout(10_000);
        try (Socket up = origin.accept()) {
          s.setSoLinger(true, 0);
          s.close();
          up.setSoTimeout(10_000);
          assertThat(up.getInputStream().read()).as("the upstream connection closed").isEqualTo(-1);
        }
        allowedThenClosed(p, "\"bytesUp\":0,");
      }
    }
  }

  /**
   * Connects to {@code origin} (backlog 1) until its accept queue is full, so that the kernel
   * drops the next SYN until there is room: a connect that waits. The sockets, to close after.
   */
  static java.util.List<Socket> fillAcceptQueue(ServerSocket origin) throws IOException {
    java.util.List<Socket> queued = new java.util.ArrayList<>();
    for (int i = 0; i < 8; i++) { // the accept queue of backlog 1 takes two; bounded anyway
      Socket q = new Socket();
      try {
        q.connect(origin.getLocalSocketAddress(), 300);
        queued.add(q);
      } catch (java.net.SocketTimeoutException full) {
        q.close();
        break;
      }
    }
    return queued;
  }

  /** The byte at {@code offset} of what {@link #writeUntilBlocked} writes. */
  static byte pattern(long offset) {
    return (byte) (offset % 251);
  }

  /**
   * Writes {@code total} bytes of {@link #pattern} from a daemon thread and returns once the
   * writes block (no progress for a moment) or all were written; the count is returned.
   */
  static AtomicLong writeUntilBlocked(OutputStream out, long total) throws InterruptedException {
    AtomicLong written = new AtomicLong();
    daemon("eager-client", () -> {
      byte[] chunk = new byte[64 * 1024];
      try {
        for (long sent = 0; sent < total; sent += chunk.length) {
          for (int i = 0; i < chunk.length; i++) {
            chunk[i] = pattern(sent + i);
          }
          out.write(chunk);
          written.addAndGet(chunk.length);
        }
      } catch (IOException e) {
        // closed by the test
      }
    });
    long[] last = {-1};
    DataPlaneTest.await("the client's writes to block", () -> {
      long now = written.get();
      boolean stalled = now == last[0] && now > 0;
      last[0] = now;
      sleep(300);
      return stalled;
    });
    return written;
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Test
  void aNameServerThatNeverAnswersGetsA504WithinTheDnsTimeout(@TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = new ProxyFixture(yaml(443, ""), dir.resolve("decisions.jsonl"))) {
      int queries = silentDns.queries.get();
      long start = System.nanoTime();
      try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        assertThat(DataPlaneTest.connect(s, "unpinned.allowed.test:443")).contains(" 504 ");
      }
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      assertThat(took).as("timeouts.dns is 1s").isLessThan(Duration.ofMillis(1800));
      assertThat(silentDns.queries.get()).isGreaterThan(queries);
      stillHealthy(p, "a silent name server");
      assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
          .contains("\"host\":\"unpinned.allowed.test\"").contains("\"reason\":\"dns-timeout\""));
    }
  }

  /** A small tmpfs at {@code dir}, or the test is skipped (it needs root and mount). */
  static void mountTmpfs(Path dir, String options) throws Exception {
    Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir.toString())
        .redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    Assumptions.assumeTrue(p.waitFor() == 0,
        "skipped: cannot mount a tmpfs for the full or read-only filesystem (needs root): " + out);
  }

  static void umount(Path dir) throws Exception {
    new ProcessBuilder("umount", "-l", dir.toString()).inheritIO().start().waitFor();
  }

  /** Tunnels and refusals while the log cannot be written; every line is counted as dropped. */
  static void trafficWithAnUnwritableLog(Path log, String what) throws Exception {
    try (ServerSocket origin = origin()) {
      daemon("echo-origin", () -> {
        while (!origin.isClosed()) {
          try (Socket s = origin.accept()) {
            s.getOutputStream().write(s.getInputStream().readAllBytes());
          } catch (IOException e) {
            return;
          }
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(origin.getLocalPort(), ""), log)) {
        for (int i = 0; i < 10; i++) {
          try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
            assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + origin.getLocalPort()))
                .contains(" 200 ");
            s.getOutputStream().write(("line " + i).getBytes(StandardCharsets.US_ASCII));
            s.shutdownOutput();
            assertThat(new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII))
                .isEqualTo("line " + i);
          }
          try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
            assertThat(DataPlaneTest.connect(s, "evil.example:443")).contains(" 403 ");
          }
        }
        DataPlaneTest.await("the tunnels to close", () -> p.server.runtime().limits().open() == 0);
        // 10 allows with their close events and 10 denials: 30 lines, none written.
        DataPlaneTest.await("30 lines counted as dropped", () -> p.log.dropped() == 30);
        assertThat(p.log.written()).isZero();
        assertThat(p.metrics.scrape()).contains("egress_decision_log_dropped_total 30.0");
        stillHealthy(p, what);
      }
    }
  }

  @Test
  void aFullFilesystemUnderTheDecisionLog(@TempDir Path dir) throws Exception {
    Path mnt = Files.createDirectory(dir.resolve("full"));
    mountTmpfs(mnt, "size=64k");
    try {
      try (OutputStream filler = Files.newOutputStream(mnt.resolve("filler"))) {
        byte[] block = new byte[4096];
        for (int i = 0; i < 1000; i++) {
          filler.write(block);
          filler.flush();
        }
      } catch (IOException full) {
        // no space left: as wanted
      }
      trafficWithAnUnwritableLog(mnt.resolve("decisions.jsonl"), "a full filesystem");
    } finally {
      umount(mnt);
    }
  }

  @Test
  void aReadOnlyFilesystemUnderTheDecisionLog(@TempDir Path dir) throws Exception {
    Path mnt = Files.createDirectory(dir.resolve("ro"));
    mountTmpfs(mnt, "size=64k,ro");
    try {
      trafficWithAnUnwritableLog(mnt.resolve("decisions.jsonl"), "a read-only filesystem");
    } finally {
      umount(mnt);
    }
  }
}
