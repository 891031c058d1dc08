package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIMatcher;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Tunnel attempts that once got a name past the checks, each refused now: TLS the SNI check
 * cannot read (another record version, two server_name extensions, a record other than a
 * handshake before the ClientHello) - against a JDK TLS server, which accepts all three and
 * would serve the name nobody checked - and a bracketed number taken as an IPv4 address.
 */
class TunnelHardeningTest {
  static Origins origins;
  static TestCerts certs;

  @BeforeAll
  static void setUp() throws Exception {
    origins = new Origins();
    certs = new TestCerts("www.allowed.test", "evil.test");
  }

  @AfterAll
  static void tearDown() {
    origins.close();
  }

  static String config(int port) {
    return """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
          - {name: tls, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %d}
        policy:
          rules:
            - allow: www.allowed.test
              ports: [%d]
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          hosts:
            www.allowed.test: 127.0.0.1
            evil.test: 127.0.0.1
          servers: ["127.0.0.1:9"]
        timeouts: {dns: 1s, connect: 2s, clientHello: 2s}
        """.formatted(port, port);
  }

  /** A JDK TLS server on 127.0.0.1 recording the SNI of each handshake it completes. */
  static final class JdkTlsOrigin implements AutoCloseable {
    final SSLServerSocket server;
    final List<String> requested = new CopyOnWriteArrayList<>(); // SNIs the matcher saw
    final List<String> completed = new CopyOnWriteArrayList<>(); // SNIs of finished handshakes
    final Thread thread;

    JdkTlsOrigin() throws Exception {
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      ks.setKeyEntry("k", certs.serverKey.getPrivate(), "x".toCharArray(),
          new Certificate[] {certs.server, certs.ca});
      KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
      kmf.init(ks, "x".toCharArray());
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(kmf.getKeyManagers(), null, null);
      server = (SSLServerSocket) ctx.getServerSocketFactory().createServerSocket(0, 50,
          java.net.InetAddress.getByName("127.0.0.1"));
      SSLParameters p = server.getSSLParameters();
      p.setSNIMatchers(List.of(new SNIMatcher(0) {
        @Override
        public boolean matches(SNIServerName name) {
          requested.add(((SNIHostName) new SNIHostName(name.getEncoded())).getAsciiName());
          return true;
        }
      }));
      server.setSSLParameters(p);
      thread = new Thread(() -> {
        for (int i = 0; i < 20 && !server.isClosed(); i++) { // bounded
          try (SSLSocket s = (SSLSocket) server.accept()) {
            s.setSoTimeout(5000);
            s.startHandshake();
            List<SNIServerName> names =
                ((ExtendedSSLSession) s.getSession()).getRequestedServerNames();
            String sni = names.isEmpty() ? "" : ((SNIHostName) names.get(0)).getAsciiName();
            completed.add(sni);
            s.getOutputStream().write(("served " + sni + "\n").getBytes(StandardCharsets.UTF_8));
            s.getOutputStream().flush();
          } catch (IOException e) {
            // a refused or broken handshake: next
          }
        }
      }, "jdk-tls-origin");
      thread.setDaemon(true);
      thread.start();
    }

    int port() {
      return server.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      server.close();
    }
  }

  /**
   * A socket whose output, once {@link #armed}, has the byte at offset 1 of what follows (the
   * first TLS record's legacy_record_version major byte) replaced by {@code major}.
   */
  static final class RecordVersionSocket extends Socket {
    volatile boolean armed;
    final int major;

    RecordVersionSocket(int major) {
      this.major = major;
    }

    OutputStream raw() throws IOException {
      return super.getOutputStream();
    }

    @Override
    public OutputStream getOutputStream() throws IOException {
      OutputStream out = super.getOutputStream();
      return new FilterOutputStream(out) {
        long pos;

        @Override
        public void write(int b) throws IOException {
          write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
          if (armed && pos <= 1 && pos + len > 1) {
            b = b.clone();
            b[off + (int) (1 - pos)] = (byte) major;
          }
          pos += len;
          out.write(b, off, len);
        }
      };
    }
  }

  static String connect(OutputStream out, InputStream in, String authority) throws IOException {
    out.write(("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n")
        .getBytes(StandardCharsets.US_ASCII));
    out.flush();
    return DataPlaneTest.readHead(in).split("\r\n")[0];
  }

  /**
   * A connection through {@code listener} to www.allowed.test:{@code port}: on the explicit
   * listener a CONNECT tunnel, on tls-sni the connection itself (its ClientHello decides).
   */
  static Socket toAllowedHost(ProxyFixture p, String listener, int port) throws IOException {
    Socket s = DataPlaneTest.socket(p.port(listener));
    if (listener.equals("explicit")) {
      assertThat(connect(s.getOutputStream(), s.getInputStream(), "www.allowed.test:" + port))
          .contains("200");
    }
    return s;
  }

  /** Through a CONNECT to www.allowed.test, a JDK TLS client names {@code sni}. */
  static String handshakeThroughTunnel(int proxyPort, int originPort, String sni, int major)
      throws Exception {
    return handshakeThroughTunnel(proxyPort, originPort, sni, major, new byte[0]);
  }

  static String handshakeThroughTunnel(int proxyPort, int originPort, String sni, int major,
      byte[] prefix) throws Exception {
    RecordVersionSocket s = new RecordVersionSocket(major);
    s.connect(new InetSocketAddress("127.0.0.1", proxyPort), 5000);
    s.setSoTimeout(5000);
    try (s) {
      assertThat(connect(s.raw(), s.getInputStream(), "www.allowed.test:" + originPort))
          .contains("200");
      s.raw().write(prefix);
      s.raw().flush();
      s.armed = major >= 0;
      SSLSocket t = (SSLSocket) certs.clientContext().getSocketFactory().createSocket(s, sni,
          originPort, false);
      SSLParameters p = t.getSSLParameters();
      p.setServerNames(List.of(new SNIHostName(sni)));
      t.setSSLParameters(p);
      try {
        t.startHandshake();
        return DataPlaneTest.line(t.getInputStream());
      } catch (IOException e) {
        return "refused: " + e;
      }
    }
  }

  /**
   * tunnel.requireSniMatch: a ClientHello naming evil.test in a tunnel to www.allowed.test must
   * never reach the upstream. With the first record's legacy_record_version major byte set to 4
   * (RFC 8446 5.1: the field "MUST be ignored for all purposes"; the JDK's TLS server does),
   * Netty's SslClientHelloHandler does not recognise the record: refused, not let through.
   */
  @Test
  void anotherRecordVersionIsRefusedNotServed(@TempDir Path dir) throws Exception {
    try (JdkTlsOrigin origin = new JdkTlsOrigin();
        ProxyFixture p = new ProxyFixture(config(origin.port()), dir.resolve("d.jsonl"))) {
      // Control: the plain mismatch is refused, the matching name is served.
      assertThat(handshakeThroughTunnel(p.port("explicit"), origin.port(), "evil.test", -1))
          .startsWith("refused");
      assertThat(handshakeThroughTunnel(p.port("explicit"), origin.port(), "www.allowed.test",
          -1)).isEqualTo("served www.allowed.test");
      // The attempt: the same mismatch, record version 0x0403 instead of 0x0303.
      String answer = handshakeThroughTunnel(p.port("explicit"), origin.port(), "evil.test", 4);
      assertThat(answer).as("tunnel with SNI evil.test (upstream read SNIs %s)",
          origin.requested).startsWith("refused");
    }
  }

  /** The same with a hand-built ClientHello to a recording origin: no byte may reach it. */
  @Test
  void anotherRecordVersionNeverReachesTheUpstream(@TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = new ProxyFixture(config(recorder.port), dir.resolve("d.jsonl"));
        Socket s = DataPlaneTest.socket(p.port("explicit"))) {
      assertThat(connect(s.getOutputStream(), s.getInputStream(),
          "www.allowed.test:" + recorder.port)).contains("200");
      byte[] hello = ClientHellos.records(
          ClientHellos.handshake("evil.test", List.of("h2"), 0, false), 1);
      hello[1] = 4; // legacy_record_version 0x0401
      s.getOutputStream().write(hello);
      s.getOutputStream().flush();
      Thread.sleep(500);
      assertThat(recorder.receivedBytes()).as("bytes the upstream received").isEmpty();
    }
  }

  /**
   * Two server_name extensions (the first naming the CONNECT host, the second evil.test):
   * ClientHello.parse cannot read it; the JDK's TLS server would keep the last one and read
   * evil.test. Refused.
   */
  @Test
  void twoServerNameExtensionsAreRefused(@TempDir Path dir) throws Exception {
    try (JdkTlsOrigin origin = new JdkTlsOrigin();
        ProxyFixture p = new ProxyFixture(config(origin.port()), dir.resolve("d.jsonl"));
        Socket s = DataPlaneTest.socket(p.port("explicit"))) {
      assertThat(connect(s.getOutputStream(), s.getInputStream(),
          "www.allowed.test:" + origin.port())).contains("200");
      byte[] hs = twoSniExtensions("www.allowed.test", "evil.test");
      s.getOutputStream().write(ClientHellos.records(hs, 1));
      s.getOutputStream().flush();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
      while (origin.requested.isEmpty() && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      assertThat(origin.requested).as("SNIs the upstream TLS server read")
          .doesNotContain("evil.test");
    }
  }

  /** A ClientHello (handshake message) with two server_name extensions. */
  static byte[] twoSniExtensions(String first, String second) {
    byte[] one = ClientHellos.handshake(first, List.of(), 0, false);
    byte[] two = ClientHellos.handshake(second, List.of(), 0, false);
    // Each: type(1) len(3) version(2) random(32) sid(1+32) suites(2+4) comp(1+1) extlen(2) ext
    int extStart = 4 + 2 + 32 + 33 + 6 + 2;
    int extLen1 = ((one[extStart] & 0xff) << 8) | (one[extStart + 1] & 0xff);
    int sni2Len = 4 + 2 + 3 + second.length(); // ext header, list length, entry
    ByteArrayOutputStream ext = new ByteArrayOutputStream();
    ext.write(one, extStart + 2, extLen1); // server_name(first), supported_versions
    ext.write(two, extStart + 2, sni2Len); // server_name(second)
    byte[] e = ext.toByteArray();
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    body.write(one, 4, extStart - 4);
    body.write(e.length >>> 8);
    body.write(e.length);
    body.write(e, 0, e.length);
    byte[] b = body.toByteArray();
    ByteArrayOutputStream hs = new ByteArrayOutputStream();
    hs.write(1);
    hs.write(b.length >>> 16);
    hs.write(b.length >>> 8);
    hs.write(b.length);
    hs.write(b, 0, b.length);
    return hs.toByteArray();
  }

  /** Records that are not handshakes before the ClientHello, as some TLS servers accept. */
  @Test
  void aRecordBeforeTheClientHelloIsRefused(@TempDir Path dir) throws Exception {
    byte[][] prefixes = {
        {21, 3, 3, 0, 2, 1, 90}, // alert, warning, user_canceled
        {20, 3, 3, 0, 1, 1}, // change_cipher_spec
        {23, 3, 3, 0, 0}, // empty application_data
    };
    try (JdkTlsOrigin origin = new JdkTlsOrigin();
        ProxyFixture p = new ProxyFixture(config(origin.port()), dir.resolve("d.jsonl"))) {
      List<String> answers = new java.util.ArrayList<>();
      for (byte[] prefix : prefixes) {
        answers.add(prefix[0] + ": " + handshakeThroughTunnel(p.port("explicit"), origin.port(),
            "evil.test", -1, prefix));
      }
      assertThat(origin.requested).as("SNIs the upstream TLS server read; answers %s", answers)
          .doesNotContain("evil.test");
    }
  }

  // ---- a second ClientHello, after a HelloRetryRequest ---------------------------------

  static byte[] u16(int v) {
    return new byte[] {(byte) (v >>> 8), (byte) v};
  }

  static byte[] ext(int type, byte[] data) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes(u16(type));
    b.writeBytes(u16(data.length));
    b.writeBytes(data);
    return b.toByteArray();
  }

  static byte[] vec16(byte[] data) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes(u16(data.length));
    b.writeBytes(data);
    return b.toByteArray();
  }

  /** A TLS 1.3 ClientHello record: x25519 only, key share {@code share} (empty: none). */
  static byte[] hello13(String sni, byte[] share, byte[] cookieExt) {
    return ClientHellos.records(helloMessage13(sni, share, cookieExt), 1);
  }

  /** The handshake message (header and body) of {@link #hello13}. */
  static byte[] helloMessage13(String sni, byte[] share, byte[] cookieExt) {
    ByteArrayOutputStream exts = new ByteArrayOutputStream();
    byte[] name = sni.getBytes(StandardCharsets.US_ASCII);
    ByteArrayOutputStream entry = new ByteArrayOutputStream();
    entry.write(0);
    entry.writeBytes(vec16(name));
    exts.writeBytes(ext(0, vec16(entry.toByteArray())));
    exts.writeBytes(ext(43, new byte[] {2, 3, 4}));
    exts.writeBytes(ext(10, vec16(u16(0x001d))));
    exts.writeBytes(ext(13, vec16(new byte[] {4, 3, 8, 4, 8, 9})));
    ByteArrayOutputStream ks = new ByteArrayOutputStream();
    if (share.length > 0) {
      ks.writeBytes(u16(0x001d));
      ks.writeBytes(vec16(share));
    }
    exts.writeBytes(ext(51, vec16(ks.toByteArray())));
    if (cookieExt != null) {
      exts.writeBytes(cookieExt);
    }
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    body.writeBytes(u16(0x0303));
    body.writeBytes(new byte[32]);
    body.write(32);
    body.writeBytes(new byte[32]);
    body.writeBytes(vec16(u16(0x1301)));
    body.write(1);
    body.write(0);
    body.writeBytes(vec16(exts.toByteArray()));
    byte[] b = body.toByteArray();
    ByteArrayOutputStream hs = new ByteArrayOutputStream();
    hs.write(1);
    hs.write(b.length >>> 16);
    hs.write(b.length >>> 8);
    hs.write(b.length);
    hs.writeBytes(b);
    return hs.toByteArray();
  }

  static byte[] readRecord(InputStream in) throws IOException {
    byte[] h = in.readNBytes(5);
    if (h.length < 5) {
      return h;
    }
    int len = ((h[3] & 0xff) << 8) | (h[4] & 0xff);
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes(h);
    b.writeBytes(in.readNBytes(len));
    return b.toByteArray();
  }

  /** The cookie extension (type, length, data) of a HelloRetryRequest record, or null. */
  static byte[] cookieOf(byte[] rec) {
    int p = 5 + 4 + 2 + 32;
    p += 1 + (rec[p] & 0xff);
    p += 2 + 1;
    int end = p + 2 + (((rec[p] & 0xff) << 8) | (rec[p + 1] & 0xff));
    p += 2;
    while (p + 4 <= end) {
      int type = ((rec[p] & 0xff) << 8) | (rec[p + 1] & 0xff);
      int len = ((rec[p + 2] & 0xff) << 8) | (rec[p + 3] & 0xff);
      if (type == 44) {
        return java.util.Arrays.copyOfRange(rec, p, p + 4 + len);
      }
      p += 4 + len;
    }
    return null;
  }

  /**
   * The first ClientHello names the allowed host and offers no key share; the server asks for
   * one (HelloRetryRequest); the second ClientHello names {@code second}. Through a CONNECT
   * tunnel and on tls-sni: another name is refused before the server reads it; the same name
   * (a client's ordinary retry) gets its ServerHello - also when the client's
   * middlebox-compatibility change_cipher_spec comes right behind its first hello, before the
   * server answers (as a client sending early data does).
   */
  @ParameterizedTest(name = "{0}, second hello names {1}, change_cipher_spec {2}")
  @CsvSource({"explicit, www.allowed.test, after the HRR", "explicit, evil.test, after the HRR",
      "tls, www.allowed.test, after the HRR", "tls, evil.test, after the HRR",
      "explicit, www.allowed.test, behind the hello", "tls, www.allowed.test, behind the hello"})
  void aSecondClientHelloAfterAHelloRetryRequestIsChecked(String listener, String second,
      String ccsAt, @TempDir Path dir) throws Exception {
    byte[] ccs = {20, 3, 3, 0, 1, 1}; // middlebox-compatibility change_cipher_spec
    boolean early = ccsAt.equals("behind the hello");
    try (JdkTlsOrigin origin = new JdkTlsOrigin();
        ProxyFixture p = new ProxyFixture(config(origin.port()), dir.resolve("d.jsonl"));
        Socket s = toAllowedHost(p, listener, origin.port())) {
      OutputStream out = s.getOutputStream();
      InputStream in = s.getInputStream();
      out.write(concat(hello13("www.allowed.test", new byte[0], null),
          early ? ccs : new byte[0]));
      out.flush();
      byte[] hrr = readRecord(in);
      assertThat(hrr).as("HelloRetryRequest").hasSizeGreaterThan(40);
      out.write(early ? new byte[0] : ccs);
      byte[] share = new byte[32];
      new java.security.SecureRandom().nextBytes(share);
      out.write(hello13(second, share, cookieOf(hrr)));
      out.flush();
      byte[] next;
      try {
        next = readRecord(in);
        for (int i = 0; i < 5 && next.length > 0 && next[0] == 20; i++) {
          next = readRecord(in); // the server's change_cipher_spec
        }
      } catch (java.net.SocketException e) {
        next = new byte[0]; // reset: closed by the proxy
      }
      boolean serverHello = next.length >= 6 && next[0] == 22 && next[5] == 2;
      if (second.equals("evil.test")) {
        assertThat(origin.requested).as("SNIs the upstream read").doesNotContain("evil.test");
        assertThat(serverHello).as("a ServerHello for the second hello").isFalse();
        assertThat(p.closeAndReadLog()).anySatisfy(d -> assertThat(d).contains("\"reason\":"
            + "\"sni-mismatch\"").contains("\"sni\":\"evil.test\""));
      } else {
        assertThat(serverHello).as("a ServerHello for the second hello (%s)",
            java.util.HexFormat.of().formatHex(next)).isTrue();
      }
    }
  }

  /** The handshake records in {@code b} that begin with a ServerHello. */
  static int serverHellos(byte[] b) {
    int n = 0;
    for (int p = 0; p + 5 < b.length; p += 5 + (((b[p + 3] & 0xff) << 8) | (b[p + 4] & 0xff))) {
      if (b[p] == 22 && b[p + 5] == 2) {
        n++;
      }
    }
    return n;
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      b.writeBytes(part);
    }
    return b.toByteArray();
  }

  /**
   * A second ClientHello sent right behind the first, before the server's HelloRetryRequest,
   * would be read by the server after it (the JDK's does) without meeting the check made for
   * a second hello: refused, in its own record behind a change_cipher_spec, and as a second
   * handshake message in the first hello's record. Through a CONNECT tunnel and on tls-sni.
   */
  @ParameterizedTest(name = "{0}, {1}")
  @CsvSource({"explicit, own record", "explicit, same record", "tls, own record",
      "tls, same record"})
  void aSecondClientHelloBeforeTheHelloRetryRequestIsRefused(String listener, String shape,
      @TempDir Path dir) throws Exception {
    try (JdkTlsOrigin origin = new JdkTlsOrigin();
        ProxyFixture p = new ProxyFixture(config(origin.port()), dir.resolve("d.jsonl"));
        Socket s = toAllowedHost(p, listener, origin.port())) {
      OutputStream out = s.getOutputStream();
      InputStream in = s.getInputStream();
      byte[] share = new byte[32];
      new java.security.SecureRandom().nextBytes(share);
      byte[] first = helloMessage13("www.allowed.test", new byte[0], null);
      byte[] second = helloMessage13("evil.test", share, null);
      out.write(shape.equals("own record")
          ? concat(ClientHellos.records(first, 1), new byte[] {20, 3, 3, 0, 1, 1},
              ClientHellos.records(second, 1))
          : ClientHellos.records(concat(first, second), 1));
      out.flush();
      byte[] rest;
      try {
        rest = in.readAllBytes(); // closed by the proxy
      } catch (java.net.SocketException e) {
        rest = new byte[0];
      }
      assertThat(serverHellos(rest)).as("ServerHellos (a HelloRetryRequest is one)")
          .isLessThanOrEqualTo(1);
      assertThat(p.closeAndReadLog()).anySatisfy(d -> assertThat(d)
          .contains("\"decision\":\"deny\"").contains("\"reason\":\"bad-request\""));
      origin.close();
      origin.thread.join(5000);
      assertThat(origin.requested).as("SNIs the upstream read").doesNotContain("evil.test");
    }
  }

  /**
   * A tunnel whose ClientHello begins and does not finish within timeouts.clientHello: closed,
   * nothing at the origin, and the refusal logged with its reason, as on tls-sni.
   */
  @Test
  void anUnfinishedClientHelloInATunnelIsLoggedWhenItTimesOut(@TempDir Path dir)
      throws Exception {
    Origins.Origin recorder = origins.recorder();
    try (ProxyFixture p = new ProxyFixture(config(recorder.port).replace("clientHello: 2s",
            "clientHello: 300ms"), dir.resolve("d.jsonl"));
        Socket s = DataPlaneTest.socket(p.port("explicit"))) {
      assertThat(connect(s.getOutputStream(), s.getInputStream(),
          "www.allowed.test:" + recorder.port)).contains("200");
      byte[] hello = ClientHellos.records(ClientHellos.handshake("www.allowed.test",
          List.of("h2"), 0, false), 1);
      s.getOutputStream().write(java.util.Arrays.copyOf(hello, 20));
      assertThat(s.getInputStream().read()).as("closed").isEqualTo(-1);
      assertThat(recorder.receivedBytes()).isEmpty();
      assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
          .contains("\"decision\":\"deny\"").contains("\"reason\":\"client-hello-timeout\""));
    }
  }

  /**
   * SECURITY.md: numeric shorthands such as 2130706433 are refused (invalid-host), in brackets
   * too (InetAddress.getByName would read a lone decimal as an IPv4 address).
   */
  @Test
  void aBracketedDecimalIsNotAnIpv4Address(@TempDir Path dir) throws Exception {
    Origins.Origin recorder = origins.recorder();
    String yaml = """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
        policy:
          rules:
            - allow: 127.0.0.1/32
              ports: [%d]
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          servers: ["127.0.0.1:9"]
        """.formatted(recorder.port);
    for (String host : List.of("[2130706433]", "0x7f.1")) {
      try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve(host + ".jsonl"));
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        s.getOutputStream().write(("CONNECT " + host + ":" + recorder.port + " HTTP/1.1\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).as("CONNECT " + host)
            .startsWith("400|").contains("'" + host + "' is not a valid DNS name or IP address");
        assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
            .contains("\"reason\":\"invalid-host\""));
      }
    }
    assertThat(recorder.receivedBytes()).isEmpty();
  }
}
