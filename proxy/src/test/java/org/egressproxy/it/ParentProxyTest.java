package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * upstream.proxy: allowed traffic leaves through a parent proxy (HTTP CONNECT or SOCKS5) started
 * by the test, which sees the allowed destinations and never the denied ones.
 */
class ParentProxyTest {
  static Origins origins;
  static TestCerts certs;
  static Origins.Origin tlsOrigin;

  @BeforeAll
  static void start() throws Exception {
    origins = new Origins();
    certs = new TestCerts("allowed.test", "*.allowed.test");
    tlsOrigin = origins.tls(certs.serverContext("konnectivity", "h2"));
    DataPlaneTest.clientTls = certs.clientContext();
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  @Test
  void httpParentSeesOnlyWhatThePolicyAllowed(@TempDir Path dir) throws Exception {
    // The parent: another egress-proxy, allowing everything under .test and .example.
    String parentYaml = """
        listeners:
          - {name: parent, mode: http-proxy, bind: "127.0.0.1:0"}
        policy:
          rules:
            - allow: "*.test"
              ports: [%d]
            - allow: "*.example"
              ports: [%d, 443]
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          hosts: {www.allowed.test: 127.0.0.1, evil.example: 127.0.0.1}
        """.formatted(tlsOrigin.port, tlsOrigin.port);
    try (ProxyFixture parent = new ProxyFixture(parentYaml, dir.resolve("parent.jsonl"))) {
      String child = DataPlaneTest.withPorts(DataPlaneTest.config(tlsOrigin.port, tlsOrigin.port,
          "upstream: {proxy: \"http://127.0.0.1:" + parent.port("parent") + "\"}"),
          tlsOrigin.port);
      try (ProxyFixture p = new ProxyFixture(child, dir.resolve("child.jsonl"))) {
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + tlsOrigin.port))
              .contains(" 200 ");
          SSLSocket t = DataPlaneTest.tls(s, "www.allowed.test", "konnectivity");
          assertThat(DataPlaneTest.line(t.getInputStream())).isEqualTo("alpn=konnectivity");
        }
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          assertThat(DataPlaneTest.connect(s, "evil.example:" + tlsOrigin.port)).contains(" 403 ");
        }
        List<String> childLog = p.closeAndReadLog();
        assertThat(childLog).anySatisfy(l -> assertThat(l).contains("\"host\":\"www.allowed.test\"")
            .contains("\"upstream\":\"127.0.0.1:" + parent.port("parent") + "\""));
      }
      List<String> parentLog = parent.closeAndReadLog();
      assertThat(parentLog).anySatisfy(l -> assertThat(l).contains("\"host\":\"www.allowed.test\""));
      assertThat(parentLog).noneSatisfy(l -> assertThat(l).contains("evil.example"));
    }
  }

  /** A parent that refuses: the client's 502 says what the parent answered, plainly. */
  @Test
  void aParentsRefusalIsPassedOnPlainly(@TempDir Path dir) throws Exception {
    String parentYaml = """
        listeners:
          - {name: parent, mode: http-proxy, bind: "127.0.0.1:0"}
        policy:
          rules:
            - {allow: "*.example", ports: [443]}
        """;
    try (ProxyFixture parent = new ProxyFixture(parentYaml, null)) {
      String child = DataPlaneTest.withPorts(DataPlaneTest.config(tlsOrigin.port, tlsOrigin.port,
          "upstream: {proxy: \"http://127.0.0.1:" + parent.port("parent") + "\"}"),
          tlsOrigin.port);
      try (ProxyFixture p = new ProxyFixture(child, null);
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        s.getOutputStream().write(("GET http://www.allowed.test:" + tlsOrigin.port + "/ HTTP/1.1"
            + "\r\nHost: www.allowed.test:" + tlsOrigin.port + "\r\n\r\n")
            .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).isEqualTo("502|egress-proxy: "
            + "GET www.allowed.test:" + tlsOrigin.port + " failed: parent proxy 127.0.0.1:"
            + parent.port("parent") + " answered 403 Forbidden\n");
      }
    }
  }

  @Test
  void socks5ParentAndNoProxy(@TempDir Path dir) throws Exception {
    List<String> asked = new CopyOnWriteArrayList<>();
    try (ServerSocket socks = new ServerSocket(0)) {
      Thread server = new Thread(() -> serveSocks5(socks, asked));
      server.setDaemon(true);
      server.start();
      String child = DataPlaneTest.withPorts(DataPlaneTest.config(tlsOrigin.port, tlsOrigin.port,
          "upstream: {proxy: \"socks5://127.0.0.1:" + socks.getLocalPort() + "\","
              + " noProxy: [\"api.allowed.test\"]}"), tlsOrigin.port);
      try (ProxyFixture p = new ProxyFixture(child, null)) {
        for (String host : List.of("www.allowed.test", "api.allowed.test")) {
          try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
            assertThat(DataPlaneTest.connect(s, host + ":" + tlsOrigin.port)).contains(" 200 ");
            SSLSocket t = DataPlaneTest.tls(s, host, "konnectivity");
            assertThat(DataPlaneTest.line(t.getInputStream())).isEqualTo("alpn=konnectivity");
          }
        }
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          assertThat(DataPlaneTest.connect(s, "evil.example:" + tlsOrigin.port)).contains(" 403 ");
        }
      }
    }
    // Only the allowed name outside noProxy went through the parent, by name.
    assertThat(asked).containsExactly("www.allowed.test:" + tlsOrigin.port);
  }

  /** A minimal SOCKS5 server (no auth, CONNECT by name to 127.0.0.1), one thread per client. */
  static void serveSocks5(ServerSocket ss, List<String> asked) {
    while (!ss.isClosed()) {
      try {
        Socket c = ss.accept();
        Thread t = new Thread(() -> {
          try (c) {
            DataInputStream in = new DataInputStream(c.getInputStream());
            OutputStream out = c.getOutputStream();
            in.readUnsignedByte(); // VER
            in.readNBytes(in.readUnsignedByte()); // NMETHODS, METHODS
            out.write(new byte[] {5, 0}); // no authentication
            in.readNBytes(3); // VER CMD RSV
            int atyp = in.readUnsignedByte();
            String host = atyp == 3 ? new String(in.readNBytes(in.readUnsignedByte()),
                StandardCharsets.US_ASCII) : "ip";
            int port = in.readUnsignedShort();
            asked.add(host + ":" + port);
            try (Socket up = new Socket("127.0.0.1", port)) {
              out.write(new byte[] {5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); // succeeded
              Thread back = new Thread(() -> copy(up, c));
              back.setDaemon(true);
              back.start();
              in.transferTo(up.getOutputStream());
            }
          } catch (IOException e) {
            // client gone
          }
        });
        t.setDaemon(true);
        t.start();
      } catch (IOException e) {
        return;
      }
    }
  }

  static void copy(Socket from, Socket to) {
    try {
      InputStream in = from.getInputStream();
      in.transferTo(to.getOutputStream());
    } catch (IOException e) {
      // closed
    }
  }
}
