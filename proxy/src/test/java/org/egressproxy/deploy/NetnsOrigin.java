package org.egressproxy.deploy;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.util.List;
import java.util.Locale;
import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;

/**
 * The origin of {@link TransparentNetnsTest}, run as its own JVM inside the origin namespace
 * (a Java thread cannot enter a network namespace). TLS on port 443 and plain HTTP on port 80;
 * it prints one line per connection: who came, the SNI, the ALPN protocols offered (as they
 * arrived) and the one it picked ({@code konnectivity} when offered, else {@code http/1.1}).
 *
 * <p>{@code java NetnsOrigin BIND_IP KEYSTORE.p12 PASSWORD}
 */
public final class NetnsOrigin {
  private NetnsOrigin() {}

  public static void main(String[] args) throws Exception {
    String ip = args[0];
    char[] password = args[2].toCharArray();
    KeyStore ks = KeyStore.getInstance("PKCS12");
    try (InputStream in = new FileInputStream(args[1])) {
      ks.load(in, password);
    }
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(ks, password);
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(kmf.getKeyManagers(), null, null);
    SSLServerSocket tlsServer = (SSLServerSocket) tls.getServerSocketFactory().createServerSocket();
    tlsServer.bind(new InetSocketAddress(ip, 443));
    ServerSocket plain = new ServerSocket();
    plain.bind(new InetSocketAddress(ip, 80));
    serve(plain, false);
    serve(tlsServer, true);
    say("origin ready on " + ip + ":443 and :80");
    Thread.sleep(120_000); // the test stops it long before; never outlives a forgotten test
    System.exit(0);
  }

  private static void serve(ServerSocket server, boolean tls) {
    Thread t = new Thread(() -> {
      while (true) {
        try {
          Socket s = server.accept();
          Thread c = new Thread(() -> handle(s, tls));
          c.setDaemon(true);
          c.start();
        } catch (Exception e) {
          say("accept failed: " + e);
          return;
        }
      }
    });
    t.setDaemon(true);
    t.start();
  }

  private static void handle(Socket s, boolean tls) {
    try (s) {
      s.setSoTimeout(10_000);
      String peer = s.getInetAddress().getHostAddress();
      if (tls) {
        SSLSocket t = (SSLSocket) s;
        String[] offered = {""};
        t.setHandshakeApplicationProtocolSelector((sock, protocols) -> {
          offered[0] = String.join(",", protocols);
          return protocols.contains("konnectivity") ? "konnectivity"
              : protocols.contains("http/1.1") ? "http/1.1" : null;
        });
        t.startHandshake();
        List<String> sni = ((ExtendedSSLSession) t.getSession()).getRequestedServerNames()
            .stream().map(n -> ((SNIHostName) n).getAsciiName()).toList();
        String selected = t.getApplicationProtocol();
        say("tls peer=" + peer + " sni=" + String.join(",", sni) + " offered=" + offered[0]
            + " selected=" + selected);
        if ("konnectivity".equals(selected)) {
          t.getOutputStream().write("alpn=konnectivity\n".getBytes(StandardCharsets.UTF_8));
          t.getOutputStream().flush();
          return;
        }
      }
      BufferedReader in = new BufferedReader(
          new InputStreamReader(s.getInputStream(), StandardCharsets.ISO_8859_1));
      String requestLine = in.readLine();
      String host = "";
      for (String h = in.readLine(); h != null && !h.isEmpty(); h = in.readLine()) {
        if (h.toLowerCase(Locale.ROOT).startsWith("host:")) {
          host = h.substring(5).strip();
        }
      }
      String path = requestLine == null ? "" : requestLine.split(" ")[1];
      say("http" + (tls ? "s" : "") + " peer=" + peer + " host=" + host + " path=" + path);
      byte[] body = ("origin saw host=" + host + " path=" + path + "\n")
          .getBytes(StandardCharsets.UTF_8);
      OutputStream out = s.getOutputStream();
      out.write(("HTTP/1.1 200 OK\r\nContent-Length: " + body.length
          + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
      out.write(body);
      out.flush();
    } catch (Exception e) {
      say("connection failed: " + e);
    }
  }

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }
}
