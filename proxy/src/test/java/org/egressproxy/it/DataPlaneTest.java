package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.function.BooleanSupplier;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SNIHostName;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The data plane end to end on loopback: real sockets, real TLS (certificates generated here),
 * the proxy in-process with every listener. Names resolve to 127.0.0.1 through resolver.hosts.
 */
class DataPlaneTest {
  static Origins origins;
  static TestCerts certs;
  static Origins.Origin tlsOrigin;
  static Origins.Origin httpOrigin;
  static SSLContext clientTls;

  @BeforeAll
  static void origins() throws Exception {
    origins = new Origins();
    certs = new TestCerts("allowed.test", "*.allowed.test");
    tlsOrigin = origins.tls(certs.serverContext("konnectivity", "h2", "http/1.1"));
    httpOrigin = origins.http();
    clientTls = certs.clientContext();
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  /** A configuration with every listener; tls-sni and http-host point at the given ports. */
  static String config(int tlsUpstreamPort, int httpUpstreamPort, String extra) {
    return """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
          - {name: tls, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %d}
          - {name: http, mode: http-host, bind: "127.0.0.1:0", upstreamPort: %d}
        policy:
          rules:
            - allow: "*.allowed.test"
              ports: [1-65535-placeholder]
            - allow: allowed.test
              ports: [1-65535-placeholder]
            - deny: blocked.allowed.test
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          hosts:
            allowed.test: 127.0.0.1
            www.allowed.test: 127.0.0.1
            api.allowed.test: 127.0.0.1
            blocked.allowed.test: 127.0.0.1
            private.allowed.test: 10.1.2.3
          servers: ["127.0.0.1:9"]
        timeouts: {dns: 1s, connect: 2s, clientHello: 2s}
        %s
        """.formatted(tlsUpstreamPort, httpUpstreamPort, extra);
  }

  static String withPorts(String yaml, int... ports) {
    StringBuilder list = new StringBuilder();
    for (int p : ports) {
      list.append(list.length() == 0 ? "" : ", ").append(p);
    }
    return yaml.replace("1-65535-placeholder", list);
  }

  ProxyFixture proxy(Path dir, int tlsUp, int httpUp, String extra, int... ports) {
    return new ProxyFixture(withPorts(config(tlsUp, httpUp, extra), ports),
        dir.resolve("decisions.jsonl"));
  }

  // ---- helpers --------------------------------------------------------------------------

  static Socket socket(int port) throws IOException {
    Socket s = new Socket();
    s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
    s.setSoTimeout(10_000);
    return s;
  }

  /** Sends CONNECT and returns the status line; the socket is positioned after the head. */
  static String connect(Socket s, String authority) throws IOException {
    s.getOutputStream().write(("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority
        + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
    return readHead(s.getInputStream()).split("\r\n")[0];
  }

  static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int c;
    while ((c = in.read()) >= 0) {
      b.write(c);
      byte[] a = b.toByteArray();
      int n = a.length;
      if (n >= 4 && a[n - 4] == '\r' && a[n - 3] == '\n' && a[n - 2] == '\r' && a[n - 1] == '\n') {
        break;
      }
    }
    return b.toString(StandardCharsets.ISO_8859_1);
  }

  /** Reads one HTTP/1.1 response with a Content-Length body: "status|body". */
  static String readResponse(InputStream in) throws IOException {
    String head = readHead(in);
    int len = 0;
    for (String line : head.split("\r\n")) {
      if (line.toLowerCase().startsWith("content-length:")) {
        len = Integer.parseInt(line.substring(15).strip());
      }
    }
    byte[] body = in.readNBytes(len);
    return head.split("\r\n")[0].split(" ")[1] + "|" + new String(body, StandardCharsets.UTF_8);
  }

  static SSLSocket tls(Socket over, String sni, String... alpn) throws IOException {
    SSLSocket t = (SSLSocket) clientTls.getSocketFactory().createSocket(over, sni,
        over.getPort(), true);
    SSLParameters p = t.getSSLParameters();
    p.setServerNames(List.of(new SNIHostName(sni)));
    p.setApplicationProtocols(alpn);
    t.setSSLParameters(p);
    t.startHandshake();
    return t;
  }

  static String line(InputStream in) throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int c;
    while ((c = in.read()) >= 0 && c != '\n') {
      b.write(c);
    }
    return b.toString(StandardCharsets.UTF_8);
  }

  static void await(String what, BooleanSupplier condition) throws InterruptedException {
    Instant deadline = Instant.now().plus(Duration.ofSeconds(10));
    while (!condition.getAsBoolean()) {
      if (Instant.now().isAfter(deadline)) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(20);
    }
  }

  // ---- tests -----------------------------------------------------------------------------

  @Test
  void konnectivityAlpnSurvivesConnectAndTlsSni(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", tlsOrigin.port)) {
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "api.allowed.test:" + tlsOrigin.port))
            .isEqualTo("HTTP/1.1 200 Connection established");
        SSLSocket t = tls(s, "api.allowed.test", "konnectivity", "h2");
        assertThat(t.getApplicationProtocol()).isEqualTo("konnectivity");
        assertThat(line(t.getInputStream())).isEqualTo("alpn=konnectivity");
        t.getOutputStream().write("ping\n".getBytes(StandardCharsets.UTF_8));
        assertThat(line(t.getInputStream())).isEqualTo("ping");
      }
      try (Socket s = socket(p.port("tls"))) {
        SSLSocket t = tls(s, "api.allowed.test", "konnectivity", "h2");
        assertThat(t.getApplicationProtocol()).isEqualTo("konnectivity");
        assertThat(line(t.getInputStream())).isEqualTo("alpn=konnectivity");
      }
      List<String> log = p.closeAndReadLog();
      assertThat(log).filteredOn(l -> l.contains("\"event\":\"decision\"")).hasSize(2)
          .allSatisfy(l -> assertThat(l).contains("\"decision\":\"allow\"")
              .contains("\"host\":\"api.allowed.test\""));
      assertThat(log).filteredOn(l -> l.contains("\"listener\":\"tls\"")).first().asString()
          .contains("\"sni\":\"api.allowed.test\"").contains("\"alpn\":[\"konnectivity\",\"h2\"]")
          .contains("\"method\":\"TLS\"");
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "one record one write, 1, 0, 0",
      "one byte per write, 1, 1, 0",
      "two records, 2, 0, 0",
      "three records one byte per write, 3, 1, 0",
      "post-quantum size (over 1500 bytes), 1, 0, 1800",
      "post-quantum size in two records dribbled, 2, 7, 1800"})
  void clientHelloReachesTheUpstreamByteForByte(String name, int records, int chunk, int keyShare,
      @TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = proxy(dir, recorder.port, httpOrigin.port, "", recorder.port)) {
      byte[] hello = ClientHellos.records(ClientHellos.handshake("www.allowed.test",
          List.of("konnectivity", "h2"), keyShare, true), records);
      if (keyShare > 0) {
        assertThat(hello.length).isGreaterThan(1500);
      }
      try (Socket s = socket(p.port("tls"))) {
        OutputStream out = s.getOutputStream();
        if (chunk == 0) {
          out.write(hello);
        } else {
          for (int i = 0; i < hello.length; i += chunk) {
            out.write(hello, i, Math.min(chunk, hello.length - i));
            out.flush();
          }
        }
        await("the origin to receive the ClientHello",
            () -> recorder.receivedBytes().length >= hello.length);
        assertThat(recorder.receivedBytes()).isEqualTo(hello);
      }
      List<String> log = p.closeAndReadLog();
      assertThat(log.get(0)).contains("\"decision\":\"allow\"").contains("\"ech\":true")
          .contains("\"alpn\":[\"konnectivity\",\"h2\"]");
    }
  }

  @Test
  void sniMismatchInATunnelClosesItBeforeAnyByteReachesTheUpstream(@TempDir Path dir)
      throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = proxy(dir, recorder.port, httpOrigin.port, "", recorder.port)) {
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "www.allowed.test:" + recorder.port)).contains("200");
        s.getOutputStream().write(ClientHellos.records(
            ClientHellos.handshake("evil.example", List.of("h2"), 0, false), 1));
        s.getOutputStream().flush();
        try {
          s.getOutputStream().write(new byte[] {0x17, 3, 3, 0, 1, 0}); // more, as it closes
        } catch (IOException closedAlready) {
          // the refusal came first
        }
        try {
          assertThat(s.getInputStream().read()).as("closed by the proxy").isEqualTo(-1);
        } catch (IOException reset) {
          // closed with the second write unread: a reset, also an end
        }
      }
      Thread.sleep(200);
      assertThat(recorder.receivedBytes()).isEmpty();
      assertThat(p.closeAndReadLog()).as("one refusal, however many reads follow the hello")
          .filteredOn(l -> l.contains("\"reason\":\"sni-mismatch\"")).singleElement()
          .satisfies(l -> assertThat(l).contains("\"sni\":\"evil.example\"")
              .contains("\"decision\":\"deny\""));
    }
  }

  @Test
  void tlsSniRefusalsSendAccessDeniedOrClose(@TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = proxy(dir, recorder.port, httpOrigin.port, "", recorder.port)) {
      byte[] alert = {21, 3, 3, 0, 2, 2, 49};
      for (String sni : new String[] {"evil.example", "blocked.allowed.test", null}) {
        try (Socket s = socket(p.port("tls"))) {
          s.getOutputStream().write(ClientHellos.records(
              ClientHellos.handshake(sni, List.of(), 0, false), 1));
          assertThat(s.getInputStream().readAllBytes()).as("alert for %s", sni).isEqualTo(alert);
        }
      }
      try (Socket s = socket(p.port("tls"))) {
        s.getOutputStream().write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes());
        assertThat(s.getInputStream().readAllBytes()).isEmpty();
      }
      assertThat(recorder.connections.get()).isZero();
      List<String> log = p.closeAndReadLog();
      assertThat(log).extracting(l -> l.replaceAll(".*\"reason\":\"([^\"]+)\".*", "$1"))
          .containsExactly("no-match", "deny-rule", "no-sni", "bad-request");
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit, absolute", "http, host"})
  void eachRequestOnAKeptAliveConnectionIsDecided(String listener, String form,
      @TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", httpOrigin.port)) {
      try (Socket s = socket(p.port(listener))) {
        OutputStream out = s.getOutputStream();
        InputStream in = s.getInputStream();
        String[] hosts = {"www.allowed.test", "evil.example", "api.allowed.test",
            "blocked.allowed.test", "www.allowed.test"};
        String[] expect = {"200", "403", "200", "403", "200"};
        for (int i = 0; i < hosts.length; i++) {
          String target = form.equals("absolute")
              ? "http://" + hosts[i] + ":" + httpOrigin.port + "/p" + i : "/p" + i;
          String host = form.equals("absolute") ? hosts[i] + ":" + httpOrigin.port : hosts[i];
          out.write(("GET " + target + " HTTP/1.1\r\nHost: " + host
              + "\r\nProxy-Authorization: Basic c2VjcmV0\r\n\r\n").getBytes());
          String r;
          try {
            r = readResponse(in);
          } catch (RuntimeException e) {
            throw new AssertionError("request " + i + " to " + hosts[i] + ": connection closed; log: " + p.closeAndReadLog(), e);
          }
          assertThat(r).as("request %d to %s", i, hosts[i]).startsWith(expect[i] + "|");
          if (expect[i].equals("200")) {
            assertThat(r).contains("host=" + host).contains("path=/p" + i)
                .contains("proxy-auth=false");
          } else {
            assertThat(r).contains(hosts[i]);
          }
        }
      }
      List<String> decisions = p.closeAndReadLog().stream()
          .filter(l -> l.contains("\"event\":\"decision\"")).toList();
      assertThat(decisions).hasSize(5);
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit, absolute", "http, host"})
  void aMalformedPipelinedRequestIsAnsweredAfterTheOneBeforeIt(String listener, String form,
      @TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", httpOrigin.port)) {
      try (Socket s = socket(p.port(listener))) {
        String target = form.equals("absolute")
            ? "http://www.allowed.test:" + httpOrigin.port + "/first" : "/first";
        String host = form.equals("absolute") ? "www.allowed.test:" + httpOrigin.port
            : "www.allowed.test";
        // Both in one write: the second (obsolete line folding) is read while the first is
        // still on its way to the origin.
        s.getOutputStream().write(("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
            + "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nX: a\r\n b\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
        assertThat(readResponse(s.getInputStream())).startsWith("200|").contains("path=/first");
        assertThat(readResponse(s.getInputStream())).startsWith("400|")
            .contains("obsolete line folding");
        assertThat(s.getInputStream().read()).isEqualTo(-1);
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"explicit", "http"})
  void requestBodiesAreForwardedWhetherSizedOrChunked(String listener, @TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", httpOrigin.port)) {
      try (Socket s = socket(p.port(listener))) {
        String target = listener.equals("explicit")
            ? "http://www.allowed.test:" + httpOrigin.port + "/post" : "/post";
        String host = "www.allowed.test" + (listener.equals("explicit") ? ":" + httpOrigin.port
            : "");
        byte[] body = "x".repeat(100_000).getBytes(StandardCharsets.US_ASCII);
        OutputStream out = s.getOutputStream();
        out.write(("POST " + target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: "
            + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        assertThat(readResponse(s.getInputStream())).startsWith("200|")
            .contains("method=POST").contains("bytes=100000");
        out.write(("POST " + target + " HTTP/1.1\r\nHost: " + host
            + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
        assertThat(readResponse(s.getInputStream())).startsWith("200|").contains("bytes=11");
      }
      List<String> closes = p.closeAndReadLog().stream()
          .filter(l -> l.contains("\"event\":\"close\"")).toList();
      assertThat(closes).anySatisfy(l -> assertThat(l).contains("\"bytesUp\":100000,"))
          .anySatisfy(l -> assertThat(l).contains("\"bytesUp\":11,"));
    }
  }

  @Test
  void absoluteFormHostMismatchAndOriginFormAreRefused(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", httpOrigin.port)) {
      try (Socket s = socket(p.port("explicit"))) {
        s.getOutputStream().write(("GET http://www.allowed.test:" + httpOrigin.port
            + "/ HTTP/1.1\r\nHost: evil.example\r\n\r\n").getBytes());
        assertThat(readResponse(s.getInputStream())).startsWith("400|").contains("disagrees");
      }
      try (Socket s = socket(p.port("explicit"))) {
        s.getOutputStream().write("GET / HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n".getBytes());
        assertThat(readResponse(s.getInputStream())).startsWith("400|").contains("this is a proxy");
      }
      try (Socket s = socket(p.port("explicit"))) {
        s.getOutputStream().write(("GET http://www.allowed.test/ HTTP/1.1\r\nHost: www.allowed.test"
            + "\r\nX-Big: " + "a".repeat(20_000) + "\r\n\r\n").getBytes());
        assertThat(readResponse(s.getInputStream())).startsWith("431|");
      }
    }
  }

  /**
   * Both address families at both ends: listeners on 127.0.0.1 and [::1], origins on 127.0.0.1
   * and ::1. The proxy opens each upstream socket in the family of the address it connects to;
   * each origin says which address the proxy came from.
   */
  @Test
  void tunnelsBetweenIpv4AndIpv6(@TempDir Path dir) throws Exception {
    try (java.net.ServerSocket v4 = new java.net.ServerSocket(0, 50,
            java.net.InetAddress.getByName("127.0.0.1"));
        java.net.ServerSocket v6 = new java.net.ServerSocket(0, 50,
            java.net.InetAddress.getByName("::1"))) {
      for (java.net.ServerSocket origin : List.of(v4, v6)) {
        FaultTest.daemon("family-origin", () -> {
          for (int i = 0; i < 2; i++) { // one tunnel from each listener
            try (Socket up = origin.accept()) {
              String said = line(up.getInputStream());
              up.getOutputStream().write((said + " from " + up.getInetAddress().getHostAddress()
                  + "\n").getBytes(StandardCharsets.US_ASCII));
            } catch (IOException e) {
              return; // the test fails on the client side
            }
          }
        });
      }
      String yaml = """
          listeners:
            - {name: v4, mode: http-proxy, bind: "127.0.0.1:0"}
            - {name: v6, mode: http-proxy, bind: "[::1]:0"}
          policy:
            rules:
              - {allow: "*.allowed.test", ports: [%d, %d]}
            allowDestinationCidrs: [127.0.0.1/32, "::1/128"]
          resolver:
            hosts: {v4.allowed.test: 127.0.0.1, v6.allowed.test: "::1"}
          """.formatted(v4.getLocalPort(), v6.getLocalPort());
      try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"))) {
        for (String listener : List.of("v4", "v6")) {
          for (String family : List.of("v4", "v6")) {
            int port = family.equals("v4") ? v4.getLocalPort() : v6.getLocalPort();
            try (Socket s = new Socket()) {
              s.connect(new InetSocketAddress(listener.equals("v4") ? "127.0.0.1" : "::1",
                  p.port(listener)), 5000);
              s.setSoTimeout(10_000);
              assertThat(connect(s, family + ".allowed.test:" + port)).contains(" 200 ");
              s.getOutputStream().write("hello\n".getBytes(StandardCharsets.US_ASCII));
              assertThat(line(s.getInputStream())).as(listener + " listener to " + family)
                  .isEqualTo("hello from " + (family.equals("v4") ? "127.0.0.1"
                      : "0:0:0:0:0:0:0:1"));
            }
          }
        }
        // IPv6 in the log as RFC 5952 text in brackets, as the contract's ip:port
        List<String> log = p.closeAndReadLog();
        assertThat(log).anySatisfy(l -> assertThat(l).contains("\"client\":\"[::1]:"));
        assertThat(log).anySatisfy(l -> assertThat(l)
            .contains("\"upstream\":\"[::1]:" + v6.getLocalPort() + "\""));
        assertThat(log).noneSatisfy(l -> assertThat(l).contains("0:0:0:0:0:0:0:1"));
      }
    }
  }

  @Test
  void halfCloseReachesTheUpstreamAndTheAnswerStillComesBack(@TempDir Path dir)
      throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = proxy(dir, recorder.port, httpOrigin.port, "", recorder.port)) {
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "www.allowed.test:" + recorder.port)).contains("200");
        byte[] payload = "plain bytes, not TLS".getBytes(StandardCharsets.UTF_8);
        s.getOutputStream().write(payload);
        s.shutdownOutput();
        assertThat(line(s.getInputStream())).isEqualTo("got " + payload.length);
      }
      List<String> log = p.closeAndReadLog();
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"event\":\"close\"")
          .contains("\"bytesUp\":20").contains("\"bytesDown\":7"));
      // where the tunnel went is in the decision line already, not only at its close
      assertThat(log).filteredOn(l -> l.contains("\"event\":\"decision\"")).singleElement()
          .asString().contains("\"upstream\":\"127.0.0.1:" + recorder.port + "\"");
    }
  }

  /**
   * On NIO. On Netty's native epoll (4.2.18 to 4.2.21), left alone, this loses the tail of the
   * answer: when a half-closed socket has nothing queued, its epoll registration is deleted (ops NONE) without
   * being marked so, and the first write that has to wait then fails (epoll_ctl MOD: ENOENT) and
   * shuts the output. {@link #aLargeAnswerAfterBothFinsOnEpoll} is the reproducer, passing with
   * the workaround in place.
   */
  @Test
  void aLargeAnswerAfterBothFinsReachesASlowClientWhole(@TempDir Path dir) throws Exception {
    System.setProperty("egress.transport", "nio");
    try {
      largeAnswerAfterBothFins(dir);
    } finally {
      System.clearProperty("egress.transport");
    }
  }

  /** On epoll, with {@code io.netty.channel.epoll.EgressHalfCloseFix} (see above). */
  @Test
  void aLargeAnswerAfterBothFinsOnEpoll(@TempDir Path dir) throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(io.netty.channel.epoll.Epoll.isAvailable(),
        "native epoll is not available here: test skipped");
    System.setProperty("egress.transport", "epoll");
    try {
      assertThat(org.egressproxy.net.Transport.select().name()).isEqualTo("epoll");
      largeAnswerAfterBothFins(dir);
    } finally {
      System.clearProperty("egress.transport");
    }
  }

  /**
   * The other side of the epoll workaround: a half-closed client that then resets stays in
   * epoll, and its error must not wake the event loop on every turn (it would with a
   * level-triggered EPOLLERR). Measured as the event loops' CPU time over a second, with a wide
   * margin: spinning takes the whole second.
   */
  @Test
  void aHalfClosedClientThatResetsDoesNotKeepTheEventLoopBusy(@TempDir Path dir)
      throws Exception {
    try (java.net.ServerSocket origin = new java.net.ServerSocket(0, 1,
        java.net.InetAddress.getLoopbackAddress())) {
      java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
      Thread t = new Thread(() -> {
        try (Socket s = origin.accept()) {
          s.getInputStream().readAllBytes(); // until the client's FIN, then silence
          done.await(30, java.util.concurrent.TimeUnit.SECONDS);
        } catch (IOException | InterruptedException e) {
          // the assertions are on the proxy
        }
      });
      t.setDaemon(true);
      t.start();
      try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "",
          origin.getLocalPort())) {
        Socket s = socket(p.port("explicit"));
        assertThat(connect(s, "www.allowed.test:" + origin.getLocalPort())).contains("200");
        s.shutdownOutput();
        Thread.sleep(300); // the FIN reaches the proxy and is passed on
        s.setSoLinger(true, 0);
        s.close(); // a reset
        Thread.sleep(300);
        long busy = eventLoopCpuNanos(1000);
        done.countDown();
        assertThat(busy).as("event loop CPU time (ns) in the second after the reset")
            .isLessThan(300_000_000L);
      }
    }
  }

  /**
   * A client that sends its FIN and then resets while the upstream has not answered (and never
   * writes): the proxy ends the tunnel within a few seconds of the reset, not at the next write
   * or after {@code timeouts.idle} (an hour by default). Epoll only (NIO is not told).
   */
  @Test
  void aHalfClosedClientThatResetsEndsItsTunnel(@TempDir Path dir) throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(io.netty.channel.epoll.Epoll.isAvailable(),
        "native epoll is not available here: test skipped");
    try (java.net.ServerSocket origin = new java.net.ServerSocket(0, 1,
        java.net.InetAddress.getLoopbackAddress())) {
      java.util.concurrent.CountDownLatch fin = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
      FaultTest.daemon("silent-origin", () -> {
        try (Socket s = origin.accept()) {
          s.getInputStream().readAllBytes(); // until the client's FIN
          fin.countDown();
          done.await(30, java.util.concurrent.TimeUnit.SECONDS); // silence: nothing written
        } catch (IOException e) {
          // the assertions are on the proxy
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "",
          origin.getLocalPort())) {
        Socket s = socket(p.port("explicit"));
        assertThat(connect(s, "www.allowed.test:" + origin.getLocalPort())).contains("200");
        s.getOutputStream().write("request".getBytes(StandardCharsets.US_ASCII));
        s.shutdownOutput();
        assertThat(fin.await(10, java.util.concurrent.TimeUnit.SECONDS))
            .as("the client's FIN reached the origin").isTrue();
        s.setSoLinger(true, 0);
        s.close(); // a reset
        await("the tunnel to end", () -> p.server.runtime().limits().open() == 0);
        assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
            .contains("\"event\":\"close\"").contains("\"bytesUp\":7,"));
      } finally {
        done.countDown();
      }
    }
  }

  /**
   * The origin sends its FIN while the client's bytes still queue for it (it reads nothing yet),
   * and the client's FIN is read only after: the proxy closes the client's side at that FIN and
   * the origin's only once everything queued for it is written. Every byte reaches the origin,
   * and the tunnel ends. On NIO, which has no sweep for closed sockets to hide a stuck one.
   */
  @Test
  void anOriginsFinWhileBytesQueueForItStillGetsItEveryByte(@TempDir Path dir) throws Exception {
    int size = 4 * 1024 * 1024;
    System.setProperty("egress.transport", "nio");
    try (java.net.ServerSocket origin = new java.net.ServerSocket()) {
      origin.setReceiveBufferSize(16 * 1024);
      origin.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0),
          1);
      java.util.concurrent.CountDownLatch originFin = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch clientFin = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch originRead = new java.util.concurrent.CountDownLatch(1);
      long[] received = {-1};
      FaultTest.daemon("slow-origin", () -> {
        try (Socket s = origin.accept()) {
          clientFin.await(10, java.util.concurrent.TimeUnit.SECONDS);
          Thread.sleep(200); // all sent by the client, FIN too; most of it waits on the way
          s.shutdownOutput(); // the origin's FIN, while it reads nothing yet
          originFin.countDown();
          Thread.sleep(300);
          received[0] = s.getInputStream().transferTo(java.io.OutputStream.nullOutputStream());
          originRead.countDown();
        } catch (IOException e) {
          // the assertions are on the proxy
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      });
      try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "",
          origin.getLocalPort())) {
        try (Socket s = socket(p.port("explicit"))) {
          assertThat(connect(s, "www.allowed.test:" + origin.getLocalPort())).contains("200");
          s.getOutputStream().write(new byte[size]);
          s.shutdownOutput();
          clientFin.countDown();
          assertThat(originFin.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
          assertThat(s.getInputStream().read()).as("the origin's FIN, passed on").isEqualTo(-1);
          await("the tunnel to end", () -> p.server.runtime().limits().open() == 0);
        }
        assertThat(originRead.await(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
        assertThat(received[0]).as("bytes that reached the origin").isEqualTo(size);
        assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
            .contains("\"event\":\"close\"").contains("\"bytesUp\":" + size + ","));
      }
    } finally {
      System.clearProperty("egress.transport");
    }
  }

  /**
   * The other crossing: the origin's answer and FIN wait in the proxy for a slow client, which
   * sends its own FIN meanwhile. Whether the proxy has read the origin's FIN by then, with some
   * of the answer still queued for the client, depends on how much the kernel buffers toward
   * the client, which the test cannot know; so the client's FIN goes out with 1 to 5 MiB of the
   * answer still unread, in 128 KiB steps, one tunnel each. Every tunnel must deliver the whole
   * answer and then end. On NIO, which has no sweep for closed sockets to hide a stuck one.
   */
  @Test
  void finsCrossingAtASlowClientEndEveryTunnel(@TempDir Path dir) throws Exception {
    int size = 6 * 1024 * 1024;
    int steps = 33;
    System.setProperty("egress.transport", "nio");
    try (java.net.ServerSocket origin = new java.net.ServerSocket(0, steps,
        java.net.InetAddress.getLoopbackAddress())) {
      FaultTest.daemon("answering-origin", () -> {
        for (int i = 0; i < steps; i++) {
          try (Socket s = origin.accept()) {
            s.getOutputStream().write(new byte[size]);
            s.shutdownOutput();
            s.getInputStream().transferTo(java.io.OutputStream.nullOutputStream());
          } catch (IOException e) {
            return; // the client side fails the test
          }
        }
      });
      try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "",
          origin.getLocalPort())) {
        for (int i = 0; i < steps; i++) {
          int unread = 1024 * 1024 + i * 128 * 1024;
          try (Socket s = new Socket()) {
            s.setReceiveBufferSize(16 * 1024);
            s.connect(new InetSocketAddress("127.0.0.1", p.port("explicit")), 5000);
            s.setSoTimeout(10_000);
            assertThat(connect(s, "www.allowed.test:" + origin.getLocalPort())).contains("200");
            InputStream in = s.getInputStream();
            assertThat(in.readNBytes(size - unread)).hasSize(size - unread);
            Thread.sleep(150); // the proxy fills what the kernel takes, and reads on
            s.shutdownOutput();
            Thread.sleep(50);
            assertThat(in.transferTo(java.io.OutputStream.nullOutputStream()))
                .as("the rest of the answer, %d bytes unread at the client's FIN", unread)
                .isEqualTo(unread);
            await("the tunnel with " + unread + " bytes unread at the client's FIN to end",
                () -> p.server.runtime().limits().open() == 0);
          }
        }
      }
    } finally {
      System.clearProperty("egress.transport");
    }
  }

  /** CPU time the proxy's event loops ({@code egress-io-*}) use over {@code millis}. */
  static long eventLoopCpuNanos(long millis) throws InterruptedException {
    java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory
        .getThreadMXBean();
    java.util.Map<Long, Long> before = new java.util.HashMap<>();
    for (Thread th : Thread.getAllStackTraces().keySet()) {
      if (th.getName().startsWith("egress-io")) {
        before.put(th.getId(), mx.getThreadCpuTime(th.getId()));
      }
    }
    Thread.sleep(millis);
    long total = 0;
    for (java.util.Map.Entry<Long, Long> e : before.entrySet()) {
      long now = mx.getThreadCpuTime(e.getKey());
      if (now >= 0 && e.getValue() >= 0) {
        total += now - e.getValue();
      }
    }
    return total;
  }

  private void largeAnswerAfterBothFins(Path dir) throws Exception {
    int size = 8 * 1024 * 1024;
    try (java.net.ServerSocket origin = new java.net.ServerSocket(0, 1,
        java.net.InetAddress.getLoopbackAddress())) {
      Thread t = new Thread(() -> {
        try (Socket s = origin.accept()) {
          s.getInputStream().readAllBytes(); // until the client's FIN
          s.getOutputStream().write(new byte[size]);
        } catch (IOException e) {
          // the test fails on the client side
        }
      });
      t.setDaemon(true);
      t.start();
      try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "",
          origin.getLocalPort())) {
        try (Socket s = socket(p.port("explicit"))) {
          s.setReceiveBufferSize(16 * 1024);
          assertThat(connect(s, "www.allowed.test:" + origin.getLocalPort())).contains("200");
          s.getOutputStream().write("request".getBytes(StandardCharsets.US_ASCII));
          s.shutdownOutput();
          Thread.sleep(1000); // a slow client: the origin has finished and closed meanwhile
          assertThat(s.getInputStream().readAllBytes()).hasSize(size);
        }
      }
    }
  }

  @Test
  void upstreamFailuresGive502And504AndPrivateResultsGive403(@TempDir Path dir)
      throws Exception {
    int closedPort;
    try (java.net.ServerSocket ss = new java.net.ServerSocket(0)) {
      closedPort = ss.getLocalPort();
    }
    // A name server that answers NXDOMAIN: the name does not exist (one that does not answer
    // at all is a 504, FaultTest).
    try (TestDns dns = new TestDns(java.util.Map.of(), false);
        ProxyFixture p = new ProxyFixture(withPorts(config(tlsOrigin.port, httpOrigin.port, "")
            .replace("servers: [\"127.0.0.1:9\"]", "servers: [\"" + dns.address() + "\"]"),
            closedPort, 443), dir.resolve("decisions.jsonl"))) {
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "www.allowed.test:" + closedPort)).contains(" 502 ");
      }
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "nowhere.allowed.test:443")).contains(" 502 ");
      }
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "private.allowed.test:443")).contains(" 403 ");
      }
      List<String> log = p.closeAndReadLog();
      assertThat(log).extracting(l -> l.replaceAll(".*\"reason\":\"([^\"]+)\".*", "$1"))
          .containsExactly("upstream-error", "upstream-error", "private-destination");
    }
  }

  @Test
  void aClientThatStopsReadingKeepsTheProxysBuffersBounded(@TempDir Path dir) throws Exception {
    long limit = 256L * 1024 * 1024;
    Origins.Origin streamer = origins.streamer(limit);
    try (ProxyFixture p = proxy(dir, streamer.port, httpOrigin.port, "", streamer.port)) {
      try (Socket s = socket(p.port("explicit"))) {
        s.setReceiveBufferSize(64 * 1024);
        assertThat(connect(s, "www.allowed.test:" + streamer.port)).contains("200");
        // The client reads nothing more. The origin keeps writing until TCP pushes back.
        long[] last = {-1};
        await("the origin to be stopped by backpressure", () -> {
          long now = streamer.sent.get();
          boolean stalled = now == last[0] && now > 0;
          last[0] = now;
          try {
            Thread.sleep(300);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          return stalled;
        });
        assertThat(streamer.sent.get()).isLessThan(limit);
        long pending = p.maxPendingToAClient();
        // Held in the proxy for the client: at most the high water mark plus the one read that
        // crossed it (plus Netty's per-message accounting overhead).
        long bound = org.egressproxy.net.ProxyServer.WATER_MARK.high()
            + org.egressproxy.net.ProxyServer.MAX_READ + 4096;
        assertThat(pending).isGreaterThan(0).isLessThanOrEqualTo(bound);
      }
    }
  }

  @Test
  void decisionLogCountsTheBytesEachWay(@TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = proxy(dir, recorder.port, httpOrigin.port, "", recorder.port)) {
      for (int i = 1; i <= 3; i++) {
        try (Socket s = socket(p.port("explicit"))) {
          assertThat(connect(s, "www.allowed.test:" + recorder.port)).contains("200");
          s.getOutputStream().write(new byte[1000 * i]);
          s.shutdownOutput();
          assertThat(line(s.getInputStream())).isEqualTo("got " + 1000 * i);
        }
      }
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "evil.example:443")).contains(" 403 ");
      }
      List<String> log = p.closeAndReadLog();
      assertThat(log).filteredOn(l -> l.contains("\"event\":\"decision\"")).hasSize(4);
      List<String> closes = log.stream().filter(l -> l.contains("\"event\":\"close\"")).toList();
      assertThat(closes).hasSize(3);
      for (int i = 1; i <= 3; i++) {
        String up = "\"bytesUp\":" + 1000 * i + ",";
        String down = "\"bytesDown\":" + ("got " + 1000 * i + "\n").length() + ",";
        assertThat(closes).anySatisfy(l -> assertThat(l).contains(up).contains(down));
      }
      assertThat(p.metrics.scrape())
          .contains("egress_decisions_total{decision=\"allow\",listener=\"explicit\",reason=\"rule\",source=\"default\"} 3.0")
          .contains("egress_decisions_total{decision=\"deny\",listener=\"explicit\",reason=\"no-match\",source=\"default\"} 1.0")
          .contains("egress_bytes_total{direction=\"up\",listener=\"explicit\",source=\"default\"} 6000.0");
    }
  }

  @Test
  void slowClientHelloAndIdleConnectionsAreClosedOnTime(@TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = new ProxyFixture(withPorts(config(recorder.port, httpOrigin.port,
        "").replace("timeouts: {dns: 1s, connect: 2s, clientHello: 2s}",
        "timeouts: {dns: 1s, connect: 2s, clientHello: 500ms, idle: 1s}"), recorder.port),
        dir.resolve("decisions.jsonl"))) {
      // Half a ClientHello, then silence: closed after timeouts.clientHello.
      byte[] hello = ClientHellos.records(
          ClientHellos.handshake("www.allowed.test", List.of(), 0, false), 1);
      try (Socket s = socket(p.port("tls"))) {
        s.getOutputStream().write(hello, 0, hello.length / 2);
        long start = System.nanoTime();
        assertThat(s.getInputStream().read()).isEqualTo(-1);
        assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(5));
      }
      // An allowed tunnel where nothing moves: closed after timeouts.idle.
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "www.allowed.test:" + recorder.port)).contains("200");
        long start = System.nanoTime();
        assertThat(s.getInputStream().read()).isEqualTo(-1);
        assertThat(Duration.ofNanos(System.nanoTime() - start))
            .isGreaterThan(Duration.ofMillis(800)).isLessThan(Duration.ofSeconds(5));
      }
      assertThat(recorder.receivedBytes()).isEmpty();
      assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
          .contains("\"reason\":\"client-hello-timeout\""));
    }
  }

  @Test
  void aReloadLeavesLiveTunnelsAloneAndAppliesToNewConnections(@TempDir Path dir)
      throws Exception {
    Origins.Origin recorder = origins.recorder();
    String yaml = withPorts(config(recorder.port, httpOrigin.port, ""), recorder.port);
    try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"))) {
      try (Socket live = socket(p.port("explicit"))) {
        assertThat(connect(live, "www.allowed.test:" + recorder.port)).contains("200");
        // The new policy denies the host the live tunnel goes to.
        p.server.runtime().decider().install(compile(yaml.replace("    - deny: blocked.allowed.test",
            "    - deny: blocked.allowed.test\n    - deny: www.allowed.test")));
        try (Socket fresh = socket(p.port("explicit"))) {
          assertThat(connect(fresh, "www.allowed.test:" + recorder.port)).contains(" 403 ");
        }
        live.getOutputStream().write(new byte[1234]);
        live.shutdownOutput();
        assertThat(line(live.getInputStream())).isEqualTo("got 1234");
      }
    }
  }

  static org.egressproxy.policy.CompiledPolicy compile(String yaml) {
    org.egressproxy.config.Problems problems = new org.egressproxy.config.Problems();
    org.egressproxy.config.Config c = org.egressproxy.config.ConfigLoader.read("reload.yaml",
        new java.io.StringReader(yaml), problems);
    return new org.egressproxy.policy.PolicyCompiler().compile(c,
        org.egressproxy.catalog.CatalogSet.load(List.of(), problems), problems);
  }

  @Test
  void metricsAreValidPrometheusText(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", httpOrigin.port)) {
      try (Socket s = socket(p.port("explicit"))) {
        assertThat(connect(s, "evil.example:443")).contains(" 403 ");
      }
      java.util.regex.Pattern sample = java.util.regex.Pattern.compile(
          "[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*})?"
              + " (-?[0-9.eE+-]+|NaN|\\+Inf|-Inf)");
      String text = p.metrics.scrape();
      java.util.Map<String, Double> values = new java.util.HashMap<>();
      for (String l : text.split("\n")) {
        if (l.isEmpty() || l.startsWith("# HELP ") || l.startsWith("# TYPE ")) {
          continue;
        }
        assertThat(sample.matcher(l).matches()).as("a Prometheus sample line: %s", l).isTrue();
        values.put(l.substring(0, l.lastIndexOf(' ')),
            Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1).replace("+Inf", "Infinity")));
      }
      assertThat(values).containsEntry(
          "egress_decisions_total{decision=\"deny\",listener=\"explicit\",reason=\"no-match\","
              + "source=\"default\"}",
          1.0);
      assertThat(values.keySet()).contains("egress_connections_active{listener=\"tls\"}",
          "egress_decision_log_dropped_total",
          "cache_gets_total{cache=\"decisions\",result=\"miss\"}")
          .anyMatch(k -> k.startsWith("egress_upstream_connect_seconds_bucket{le="));
    }
  }

  @Test
  void aClientOverItsConnectionLimitGets503AndOthersCarryOn(@TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = proxy(dir, recorder.port, httpOrigin.port,
        "limits: {maxConnectionsPerClient: 2}", recorder.port)) {
      try (Socket a = socket(p.port("explicit")); Socket b = socket(p.port("explicit"))) {
        assertThat(connect(a, "www.allowed.test:" + recorder.port)).contains(" 200 ");
        assertThat(connect(b, "www.allowed.test:" + recorder.port)).contains(" 200 ");
        try (Socket c = socket(p.port("explicit"))) {
          String r = readResponse(c.getInputStream());
          assertThat(r).startsWith("503|").contains("too many connections from 127.0.0.1")
              .contains("limit 2");
        }
        try (Socket t = socket(p.port("tls"))) {
          assertThat(t.getInputStream().read()).as("tls-sni: closed").isEqualTo(-1);
        }
      }
      // Both tunnels closed: the client is under its limit again.
      await("the proxy to count the closed tunnels",
          () -> p.server.runtime().limits().open() == 0);
      try (Socket d = socket(p.port("explicit"))) {
        assertThat(connect(d, "www.allowed.test:" + recorder.port)).contains(" 200 ");
      }
      assertThat(p.metrics.scrape()).contains(
          "egress_limit_rejections_total{limit=\"per-client\",listener=\"explicit\"} 1.0")
          .contains("egress_limit_rejections_total{limit=\"per-client\",listener=\"tls\"} 1.0");
    }
  }

  @Test
  void jdkHttpClientThroughTheProxy(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir, tlsOrigin.port, httpOrigin.port, "", tlsOrigin.port,
        httpOrigin.port)) {
      java.net.http.HttpClient client = java.net.http.HttpClient.newBuilder()
          .proxy(java.net.ProxySelector.of(new InetSocketAddress("127.0.0.1",
              p.port("explicit"))))
          .sslContext(clientTls)
          .version(java.net.http.HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(5))
          .build();
      var https = client.send(java.net.http.HttpRequest.newBuilder(
              java.net.URI.create("https://www.allowed.test:" + tlsOrigin.port + "/x")).build(),
          java.net.http.HttpResponse.BodyHandlers.ofString());
      assertThat(https.statusCode()).isEqualTo(200);
      assertThat(https.body()).contains("host=www.allowed.test:" + tlsOrigin.port).contains("path=/x");
      var http = client.send(java.net.http.HttpRequest.newBuilder(
              java.net.URI.create("http://www.allowed.test:" + httpOrigin.port + "/y")).build(),
          java.net.http.HttpResponse.BodyHandlers.ofString());
      assertThat(http.statusCode()).isEqualTo(200);
      assertThat(http.body()).contains("path=/y");
      var denied = client.send(java.net.http.HttpRequest.newBuilder(
              java.net.URI.create("http://evil.example:" + httpOrigin.port + "/")).build(),
          java.net.http.HttpResponse.BodyHandlers.ofString());
      assertThat(denied.statusCode()).isEqualTo(403);
    }
  }
}
