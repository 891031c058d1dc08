package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.egressproxy.it.DataPlaneTest.readHead;
import static org.egressproxy.it.DataPlaneTest.readResponse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import javax.net.ssl.SSLContext;
import org.egressproxy.auth.PasswordHash;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code policy.sources} end to end: clients told apart by address (a client socket bound to
 * 127.0.0.2) and by proxy credentials (Basic against bcrypt and Argon2 hashes, Bearer against a
 * SHA-256), each source with its own rules on top of the top-level ones; 407 where credentials
 * would help, 403 where they would not; the source and user in the log and the metrics; the
 * decision cache keeping sources apart.
 */
class SourcesTest {
  static final String BCRYPT_PASSWORD = "s3cret:with:colons";
  static final String ARGON2_PASSWORD = "another secret";
  static final String TOKEN = "tok-0123456789abcdef";
  static Origins origins;
  static TestCerts certs;
  static Origins.Origin tlsOrigin;
  static Origins.Origin httpOrigin;
  static SSLContext clientTls;
  static String bcrypt;
  static String argon2;

  @BeforeAll
  static void start() throws Exception {
    origins = new Origins();
    certs = new TestCerts("allowed.test", "*.allowed.test");
    tlsOrigin = origins.tls(certs.serverContext("h2", "http/1.1"));
    httpOrigin = origins.http();
    clientTls = certs.clientContext();
    bcrypt = PasswordHash.bcrypt(BCRYPT_PASSWORD, 4);
    argon2 = PasswordHash.argon2id(ARGON2_PASSWORD);
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  static String config() {
    int t = tlsOrigin.port;
    int h = httpOrigin.port;
    return """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
          - {name: tls, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %1$d}
        policy:
          rules:
            - allow: common.allowed.test
              ports: [%1$d, %2$d]
          allowDestinationCidrs: [127.0.0.0/8]
          sources:
            - name: ci
              users:
                - {name: ci, passwordHash: "%3$s"}
                - {name: argon, passwordHash: "%4$s"}
              tokens:
                - {name: runner, sha256: "%5$s"}
              rules:
                - allow: ci.allowed.test
                  ports: [%1$d, %2$d]
            - name: nodes
              clients: [127.0.0.2/32]
              rules:
                - allow: nodes.allowed.test
                  ports: [%1$d, %2$d]
        resolver:
          hosts:
            common.allowed.test: 127.0.0.1
            ci.allowed.test: 127.0.0.1
            nodes.allowed.test: 127.0.0.1
          servers: ["127.0.0.1:9"]
        timeouts: {dns: 1s, connect: 2s, clientHello: 2s}
        """.formatted(t, h, bcrypt, argon2, PasswordHash.sha256Hex(TOKEN));
  }

  static Socket from(String localIp, int port) throws IOException {
    Socket s = new Socket();
    s.bind(new InetSocketAddress(localIp, 0));
    s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
    s.setSoTimeout(10_000);
    return s;
  }

  static String basic(String user, String password) {
    return "Basic " + Base64.getEncoder().encodeToString((user + ":" + password)
        .getBytes(StandardCharsets.UTF_8));
  }

  /** CONNECT with an optional Proxy-Authorization; returns the whole response head. */
  static String connect(Socket s, String authority, String auth) throws IOException {
    s.getOutputStream().write(("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority
        + "\r\n" + (auth == null ? "" : "Proxy-Authorization: " + auth + "\r\n") + "\r\n")
        .getBytes(StandardCharsets.US_ASCII));
    return readHead(s.getInputStream());
  }

  static String status(String head) {
    return head.split("\r\n")[0];
  }

  @Test
  void credentialsChooseTheSourceAndItsRules(@TempDir Path dir) throws Exception {
    int t = tlsOrigin.port;
    try (ProxyFixture p = new ProxyFixture(config(), dir.resolve("d.jsonl"))) {
      int port = p.port("explicit");
      try (Socket s = from("127.0.0.1", port)) {
        String head = connect(s, "ci.allowed.test:" + t, null);
        assertThat(status(head)).isEqualTo("HTTP/1.1 407 Proxy Authentication Required");
        assertThat(head).contains("Proxy-Authenticate: Basic realm=\"egress-proxy\"")
            .contains("Proxy-Authenticate: Bearer realm=\"egress-proxy\"");
      }
      try (Socket s = from("127.0.0.1", port)) {
        assertThat(status(connect(s, "ci.allowed.test:" + t, basic("ci", "wrong"))))
            .startsWith("HTTP/1.1 407");
      }
      try (Socket s = from("127.0.0.1", port)) {
        assertThat(status(connect(s, "ci.allowed.test:" + t, basic("nobody", "x"))))
            .startsWith("HTTP/1.1 407");
      }
      for (String auth : List.of(basic("ci", BCRYPT_PASSWORD), basic("argon", ARGON2_PASSWORD),
          "Bearer " + TOKEN)) {
        try (Socket s = from("127.0.0.1", port)) {
          assertThat(status(connect(s, "ci.allowed.test:" + t, auth))).as(auth)
              .isEqualTo("HTTP/1.1 200 Connection established");
        }
        try (Socket s = from("127.0.0.1", port)) { // the top-level rules hold for every source
          assertThat(status(connect(s, "common.allowed.test:" + t, auth)))
              .isEqualTo("HTTP/1.1 200 Connection established");
        }
        try (Socket s = from("127.0.0.1", port)) { // another source's rule does not
          String head = connect(s, "nodes.allowed.test:" + t, auth);
          assertThat(status(head)).isEqualTo("HTTP/1.1 403 Forbidden");
        }
      }
      try (Socket s = from("127.0.0.1", port)) {
        assertThat(status(connect(s, "ci.allowed.test:" + t, "Bearer not-the-token")))
            .startsWith("HTTP/1.1 407");
      }
      List<String> log = p.closeAndReadLog();
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"reason\":\"auth-required\"")
          .doesNotContain("\"source\""));
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"user\":\"ci\"")
          .contains("\"reason\":\"auth-failed\""));
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"user\":\"nobody\"")
          .contains("\"reason\":\"auth-failed\""));
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"source\":\"ci\"")
          .contains("\"user\":\"runner\"").contains("\"host\":\"ci.allowed.test\"")
          .contains("\"decision\":\"allow\""));
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"source\":\"ci\"")
          .contains("\"user\":\"argon\"").contains("\"host\":\"nodes.allowed.test\"")
          .contains("\"reason\":\"no-match\""));
      assertThat(log).noneSatisfy(l -> assertThat(l).contains(BCRYPT_PASSWORD));
      assertThat(log).noneSatisfy(l -> assertThat(l).contains(TOKEN));
    }
  }

  @Test
  void addressesChooseTheSourceAndTheCacheKeepsSourcesApart(@TempDir Path dir)
      throws Exception {
    int t = tlsOrigin.port;
    try (ProxyFixture p = new ProxyFixture(config(), dir.resolve("d.jsonl"))) {
      int port = p.port("explicit");
      // ci is allowed ci.allowed.test: that decision is cached first ...
      try (Socket s = from("127.0.0.1", port)) {
        assertThat(status(connect(s, "ci.allowed.test:" + t, "Bearer " + TOKEN)))
            .endsWith("200 Connection established");
      }
      // ... and must not serve the nodes source, which is not allowed it.
      try (Socket s = from("127.0.0.2", port)) {
        String head = connect(s, "ci.allowed.test:" + t, null);
        assertThat(status(head)).isEqualTo("HTTP/1.1 403 Forbidden");
        assertThat(readBody(s.getInputStream(), head)).contains("(source nodes)");
      }
      try (Socket s = from("127.0.0.2", port)) {
        assertThat(status(connect(s, "nodes.allowed.test:" + t, null)))
            .endsWith("200 Connection established");
      }
      try (Socket s = from("127.0.0.2", port)) {
        assertThat(status(connect(s, "common.allowed.test:" + t, null)))
            .endsWith("200 Connection established");
      }
      // Transparent TLS carries no credentials: 127.0.0.1 matches no source there.
      try (Socket raw = from("127.0.0.1", p.port("tls"))) {
        assertThat(handshakeFails(raw, "common.allowed.test")).isTrue();
      }
      try (Socket raw = from("127.0.0.2", p.port("tls"))) {
        assertThat(handshakeFails(raw, "nodes.allowed.test")).isFalse();
      }
      String metrics = p.metrics.scrape();
      assertThat(metrics)
          .contains("egress_decisions_total{decision=\"allow\",listener=\"explicit\","
              + "reason=\"rule\",source=\"ci\"} 1.0")
          .contains("egress_decisions_total{decision=\"allow\",listener=\"explicit\","
              + "reason=\"rule\",source=\"nodes\"} 2.0")
          .contains("egress_decisions_total{decision=\"deny\",listener=\"explicit\","
              + "reason=\"no-match\",source=\"nodes\"} 1.0")
          .contains("egress_decisions_total{decision=\"deny\",listener=\"tls\","
              + "reason=\"no-source\",source=\"none\"} 1.0");
      List<String> log = p.closeAndReadLog();
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"listener\":\"tls\"")
          .contains("\"reason\":\"no-source\"").contains("\"sni\":\"common.allowed.test\""));
      assertThat(log).anySatisfy(l -> assertThat(l).contains("\"listener\":\"tls\"")
          .contains("\"source\":\"nodes\"").contains("\"decision\":\"allow\""));
    }
  }

  @Test
  void aSourceAtItsMaxConnectionsIsRefusedUntilOneCloses(@TempDir Path dir) throws Exception {
    int t = tlsOrigin.port;
    Origins.Origin recorder = origins.recorder(); // answers the client's FIN, then closes
    String yaml = config().replace("    - name: nodes\n",
        "    - name: nodes\n      maxConnections: 2\n").replace(
            "allow: nodes.allowed.test\n          ports: [",
            "allow: nodes.allowed.test\n          ports: [" + recorder.port + ", ");
    assertThat(yaml).contains("maxConnections: 2").contains("ports: [" + recorder.port);
    try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("d.jsonl"))) {
      int port = p.port("explicit");
      Socket first = from("127.0.0.2", port);
      try (Socket second = from("127.0.0.2", port)) {
        assertThat(status(connect(first, "nodes.allowed.test:" + recorder.port, null)))
            .contains(" 200 ");
        // to the recorder too: a tunnel to the TLS origin would end at its 10 s handshake timeout
        assertThat(status(connect(second, "nodes.allowed.test:" + recorder.port, null)))
            .contains(" 200 ");
        try (Socket third = from("127.0.0.2", port)) {
          String head = connect(third, "nodes.allowed.test:" + t, null);
          assertThat(status(head)).isEqualTo("HTTP/1.1 503 Service Unavailable");
          assertThat(head).contains("Retry-After: 1");
          assertThat(readBody(third.getInputStream(), head))
              .contains("too many connections for source nodes (limit 2)");
        }
        // Another source is not affected.
        try (Socket ci = from("127.0.0.2", port)) {
          assertThat(status(connect(ci, "ci.allowed.test:" + t, "Bearer " + TOKEN)))
              .contains(" 200 ");
          ci.setSoLinger(true, 0); // a reset ends its tunnel now, not at the origin's timeout
        }
        DataPlaneTest.await("the other source's tunnel closed by the proxy",
            () -> p.metrics.activeByListener().getOrDefault("explicit", 0) == 2);
        first.shutdownOutput(); // the recorder answers and closes: the tunnel ends
        assertThat(DataPlaneTest.line(first.getInputStream())).isEqualTo("got 0");
        first.close();
        // once the proxy has closed it (only `second` open), its place is free
        DataPlaneTest.await("the first tunnel closed by the proxy",
            () -> p.metrics.activeByListener().getOrDefault("explicit", 0) == 1);
        try (Socket again = from("127.0.0.2", port)) {
          assertThat(status(connect(again, "nodes.allowed.test:" + t, null))).contains(" 200 ");
        }
      }
      assertThat(p.metrics.scrape()).contains(
          "egress_limit_rejections_total{limit=\"source\",listener=\"explicit\"} 1.0");
      assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
          .contains("\"source\":\"nodes\"").contains("\"reason\":\"source-limit\""));
    }
  }

  @Test
  void absoluteFormRequestsAreIdentifiedOneByOne(@TempDir Path dir) throws Exception {
    int h = httpOrigin.port;
    try (ProxyFixture p = new ProxyFixture(config(), dir.resolve("d.jsonl"));
        Socket s = from("127.0.0.1", p.port("explicit"))) {
      var out = s.getOutputStream();
      InputStream in = s.getInputStream();
      String url = "http://ci.allowed.test:" + h + "/x";
      out.write(("GET " + url + " HTTP/1.1\r\nHost: ci.allowed.test:" + h + "\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII));
      String first = readResponse(in);
      assertThat(first).startsWith("407|").contains("proxy credentials required");
      // The same kept-alive connection, now with credentials: forwarded.
      out.write(("GET " + url + " HTTP/1.1\r\nHost: ci.allowed.test:" + h
          + "\r\nProxy-Authorization: " + basic("ci", BCRYPT_PASSWORD) + "\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII));
      assertThat(readResponse(in)).startsWith("200|");
      // Two pipelined requests with different credentials, each verified in turn.
      out.write(("GET " + url + " HTTP/1.1\r\nHost: ci.allowed.test:" + h
          + "\r\nProxy-Authorization: " + basic("argon", ARGON2_PASSWORD) + "\r\n\r\n"
          + "GET " + url + " HTTP/1.1\r\nHost: ci.allowed.test:" + h
          + "\r\nProxy-Authorization: " + basic("argon", "wrong") + "\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII));
      String ok = readResponse(in);
      assertThat(ok).startsWith("200|");
      assertThat(readResponse(in)).startsWith("407|").contains("not accepted");
      // Forwarded HTTP bodies count in the bytes metric, under the request's source.
      int body = ok.length() - "200|".length();
      assertThat(p.metrics.scrape()).contains("egress_bytes_total{direction=\"down\","
          + "listener=\"explicit\",source=\"ci\"} " + (2 * body) + ".0");
    }
  }

  /**
   * A request whose password is being verified (off the event loop) followed at once by the
   * client's FIN: the FIN waits behind the request, which is answered, and then the connection
   * closes.
   */
  @Test
  void aFinBehindARequestWithAPasswordWaitsForItsAnswer(@TempDir Path dir) throws Exception {
    int h = httpOrigin.port;
    String argonSlow = PasswordHash.argon2id("fresh-" + ARGON2_PASSWORD); // not cached yet
    try (ProxyFixture p = new ProxyFixture(config().replace(argon2, argonSlow),
            dir.resolve("d.jsonl"));
        Socket s = from("127.0.0.1", p.port("explicit"))) {
      String url = "http://ci.allowed.test:" + h + "/x";
      s.getOutputStream().write(("GET " + url + " HTTP/1.1\r\nHost: ci.allowed.test:" + h
          + "\r\nProxy-Authorization: " + basic("argon", "fresh-" + ARGON2_PASSWORD)
          + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
      s.shutdownOutput();
      InputStream in = s.getInputStream();
      assertThat(readResponse(in)).startsWith("200|");
      assertThat(in.read()).as("closed after the answer").isEqualTo(-1);
    }
  }

  /**
   * A client that sends its first tunnel bytes in the same write as its CONNECT (as some do,
   * not waiting for the 200): those bytes reach the origin unchanged - also while the CONNECT's
   * password is being verified off the event loop, and once it is cached.
   */
  @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.ValueSource(strings = {"no password", "fresh password",
      "cached password"})
  void bytesSentWithTheConnectGoThroughTheTunnel(String how, @TempDir Path dir)
      throws Exception {
    int h = httpOrigin.port;
    String argonSlow = PasswordHash.argon2id("fresh-" + ARGON2_PASSWORD); // not cached yet
    String yaml = how.equals("no password")
        ? DataPlaneTest.withPorts(DataPlaneTest.config(h, h, ""), h)
        : config().replace(argon2, argonSlow);
    try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("d.jsonl"))) {
      int rounds = how.equals("cached password") ? 2 : 1;
      for (int i = 0; i < rounds; i++) {
        try (Socket s = from("127.0.0.1", p.port("explicit"))) {
          String host = how.equals("no password") ? "www.allowed.test" : "ci.allowed.test";
          String auth = how.equals("no password") ? ""
              : "Proxy-Authorization: " + basic("argon", "fresh-" + ARGON2_PASSWORD) + "\r\n";
          s.getOutputStream().write(("CONNECT " + host + ":" + h + " HTTP/1.1\r\nHost: " + host
              + ":" + h + "\r\n" + auth + "\r\nGET /in-the-tunnel HTTP/1.1\r\nHost: " + host
              + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
          InputStream in = s.getInputStream();
          assertThat(status(readHead(in))).as(how).contains(" 200 ");
          assertThat(readResponse(in)).as("the origin's answer to the tunnelled request")
              .startsWith("200|");
        }
      }
    }
  }

  /**
   * Two requests and the client's FIN in one write, the first one's password being verified:
   * the second is decoded only once the first is decided, and both are answered, in order,
   * before the FIN closes the connection.
   */
  @Test
  void requestsPipelinedBehindAPasswordCheckAreAnsweredInOrder(@TempDir Path dir)
      throws Exception {
    int h = httpOrigin.port;
    String argonSlow = PasswordHash.argon2id("fresh-" + ARGON2_PASSWORD); // not cached yet
    try (ProxyFixture p = new ProxyFixture(config().replace(argon2, argonSlow),
            dir.resolve("d.jsonl"));
        Socket s = from("127.0.0.1", p.port("explicit"))) {
      String auth = "Proxy-Authorization: " + basic("argon", "fresh-" + ARGON2_PASSWORD);
      StringBuilder w = new StringBuilder();
      for (String path : new String[] {"/one", "/two"}) {
        w.append("GET http://ci.allowed.test:").append(h).append(path).append(" HTTP/1.1\r\n")
            .append("Host: ci.allowed.test:").append(h).append("\r\n").append(auth)
            .append("\r\n\r\n");
      }
      s.getOutputStream().write(w.toString().getBytes(StandardCharsets.US_ASCII));
      s.shutdownOutput();
      InputStream in = s.getInputStream();
      assertThat(readResponse(in)).startsWith("200|").contains("path=/one");
      assertThat(readResponse(in)).startsWith("200|").contains("path=/two");
      assertThat(in.read()).as("closed after the answers").isEqualTo(-1);
    }
  }

  @Test
  void curlSendsItsProxyCredentials(@TempDir Path dir) throws Exception {
    assumeTrue(RealClientsTest.installed("curl"),
        "curl is not installed (apt-get install curl): test skipped");
    Path ca = Files.writeString(dir.resolve("ca.pem"), certs.caPem());
    try (ProxyFixture p = new ProxyFixture(config(), dir.resolve("d.jsonl"))) {
      String proxy = "http://127.0.0.1:" + p.port("explicit");
      String url = "https://ci.allowed.test:" + tlsOrigin.port + "/hello";
      RealClientsTest.Run ok = RealClientsTest.run("", "curl", "-sS", "--http1.1", "--cacert",
          ca.toString(), "-x", proxy, "--proxy-user", "ci:" + BCRYPT_PASSWORD, url);
      assertThat(ok.status()).as(ok.output()).isZero();
      assertThat(ok.output()).contains("path=/hello");
      RealClientsTest.Run none = RealClientsTest.run("", "curl", "-sS", "--cacert",
          ca.toString(), "-x", proxy, url);
      assertThat(none.status()).as(none.output()).isNotZero();
      assertThat(none.output()).contains("407");
    }
  }

  /** A TLS handshake over {@code raw} to the tls-sni listener: true when the proxy refused. */
  static boolean handshakeFails(Socket raw, String sni) {
    try {
      var t = (javax.net.ssl.SSLSocket) clientTls.getSocketFactory().createSocket(raw, sni,
          raw.getPort(), true);
      var params = t.getSSLParameters();
      params.setServerNames(List.of(new javax.net.ssl.SNIHostName(sni)));
      t.setSSLParameters(params);
      t.startHandshake();
      return false;
    } catch (IOException e) {
      return true;
    }
  }

  static String readBody(InputStream in, String head) throws IOException {
    int len = 0;
    for (String line : head.split("\r\n")) {
      if (line.toLowerCase().startsWith("content-length:")) {
        len = Integer.parseInt(line.substring(15).strip());
      }
    }
    return new String(in.readNBytes(len), StandardCharsets.UTF_8);
  }
}
