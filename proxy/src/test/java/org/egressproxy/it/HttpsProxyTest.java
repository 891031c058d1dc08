package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An http-proxy listener with tls: selfSigned: the CA and serving certificate are made on first
 * start and reused; clients trusting the CA reach the proxy over TLS and tunnel TLS inside it.
 */
class HttpsProxyTest {
  static Origins origins;
  static TestCerts certs;
  static Origins.Origin tlsOrigin;

  @BeforeAll
  static void start() throws Exception {
    origins = new Origins();
    certs = new TestCerts("allowed.test", "*.allowed.test");
    tlsOrigin = origins.tls(certs.serverContext("konnectivity", "http/1.1"));
    DataPlaneTest.clientTls = certs.clientContext();
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  static String config(Path tlsDir) {
    return DataPlaneTest.withPorts(DataPlaneTest.config(tlsOrigin.port, tlsOrigin.port, ""),
        tlsOrigin.port).replace(
        "  - {name: explicit, mode: http-proxy, bind: \"127.0.0.1:0\"}",
        "  - {name: explicit, mode: http-proxy, bind: \"127.0.0.1:0\","
            + " tls: {selfSigned: true, dir: \"" + tlsDir + "\"}}");
  }

  static SSLContext trusting(Path caPem) throws Exception {
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    try (InputStream in = Files.newInputStream(caPem)) {
      ks.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(
        TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(ks);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }

  @Test
  void tlsToTheProxyThenTlsToTheOriginInside(@TempDir Path dir) throws Exception {
    Path tlsDir = dir.resolve("tls");
    byte[] firstCa;
    try (ProxyFixture p = new ProxyFixture(config(tlsDir), null)) {
      Path ca = tlsDir.resolve("ca.pem");
      assertThat(ca).exists();
      assertThat(Files.getPosixFilePermissions(tlsDir.resolve("ca-key.pem")))
          .isEqualTo(PosixFilePermissions.fromString("rw-------"));
      firstCa = Files.readAllBytes(ca);
      try (Socket raw = DataPlaneTest.socket(p.port("explicit"))) {
        SSLSocket toProxy = (SSLSocket) trusting(ca).getSocketFactory()
            .createSocket(raw, "127.0.0.1", raw.getPort(), true);
        toProxy.startHandshake(); // verifies the proxy's certificate (IP SAN 127.0.0.1)
        assertThat(DataPlaneTest.connect(toProxy, "www.allowed.test:" + tlsOrigin.port))
            .contains(" 200 ");
        SSLSocket inner = DataPlaneTest.tls(toProxy, "www.allowed.test", "konnectivity");
        assertThat(inner.getApplicationProtocol()).isEqualTo("konnectivity");
        assertThat(DataPlaneTest.line(inner.getInputStream())).isEqualTo("alpn=konnectivity");
      }
      try (Socket raw = DataPlaneTest.socket(p.port("explicit"))) {
        raw.getOutputStream().write("CONNECT x.test:443 HTTP/1.1\r\n\r\n"
            .getBytes(StandardCharsets.US_ASCII));
        // Plain HTTP to a TLS listener gets nothing useful back: the handshake fails.
        assertThat(new String(raw.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1))
            .doesNotContain("200");
      }
    }
    // A restart reuses the CA: clients keep trusting it.
    try (ProxyFixture p = new ProxyFixture(config(tlsDir), null)) {
      assertThat(Files.readAllBytes(tlsDir.resolve("ca.pem"))).isEqualTo(firstCa);
    }
  }

  /**
   * A TLS client's close_notify on its connection to the proxy is its FIN: passed on to the
   * upstream, whose answer still comes back, then the connection ends.
   */
  @Test
  void closeNotifyFromTheClientIsPassedOnAsAFin(@TempDir Path dir) throws Exception {
    Path tlsDir = dir.resolve("tls");
    Origins.Origin recorder = origins.recorder();
    String yaml = config(tlsDir).replace("ports: [" + tlsOrigin.port + "]",
        "ports: [" + tlsOrigin.port + ", " + recorder.port + "]");
    try (ProxyFixture p = new ProxyFixture(yaml, null);
        Socket raw = DataPlaneTest.socket(p.port("explicit"))) {
      SSLSocket toProxy = (SSLSocket) trusting(tlsDir.resolve("ca.pem")).getSocketFactory()
          .createSocket(raw, "127.0.0.1", raw.getPort(), true);
      toProxy.startHandshake();
      assertThat(DataPlaneTest.connect(toProxy, "www.allowed.test:" + recorder.port))
          .contains(" 200 ");
      toProxy.getOutputStream().write("hello".getBytes(StandardCharsets.US_ASCII));
      toProxy.getOutputStream().flush();
      toProxy.shutdownOutput(); // TLS 1.3: close_notify, reading goes on
      assertThat(DataPlaneTest.line(toProxy.getInputStream())).isEqualTo("got 5");
      assertThat(toProxy.getInputStream().read()).isEqualTo(-1);
    }
  }

  @Test
  void curlThroughAnHttpsProxy(@TempDir Path dir) throws Exception {
    assumeTrue(RealClientsTest.installed("curl"),
        "curl is not installed (apt-get install curl): test skipped");
    Path tlsDir = dir.resolve("tls");
    Path originCa = Files.writeString(dir.resolve("origin-ca.pem"), certs.caPem());
    try (ProxyFixture p = new ProxyFixture(config(tlsDir), null)) {
      RealClientsTest.Run r = RealClientsTest.run("", "curl", "-sS", "--http1.1",
          "--proxy", "https://127.0.0.1:" + p.port("explicit"),
          "--proxy-cacert", tlsDir.resolve("ca.pem").toString(),
          "--cacert", originCa.toString(),
          "https://www.allowed.test:" + tlsOrigin.port + "/via-https-proxy");
      assertThat(r.status()).as(r.output()).isZero();
      assertThat(r.output()).contains("alpn=http/1.1").contains("path=/via-https-proxy");
    }
  }
}
