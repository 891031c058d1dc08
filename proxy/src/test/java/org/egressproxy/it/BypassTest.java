package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bypass suite: every way we know of to get a forbidden destination through, over real
 * sockets against the running proxy. Each attack must be refused as the row says, logged in the
 * decision log as a deny with the row's reason, and the origin - a raw recorder that every
 * allowed name resolves to, so a bypass would show - must never see a byte of it; no second
 * connection may appear either (a loop would show as one). SECURITY.md indexes these rows and
 * the older tests that cover the rest.
 *
 * <p>Fixtures: {@code open} lets allowed names reach the recorder (127.0.0.1 is an allowed
 * destination, with a CIDR rule for it); {@code strict} allows every address by CIDR rule but
 * keeps the built-in refusal of private ranges, and resolves names through {@link TestDns}, a
 * name server that answers like a rebinding attacker's; {@code noech} refuses Encrypted Client
 * Hello; {@code loop} allows 127.0.0.0/8 and points the transparent listeners at themselves;
 * {@code auth} has no top-level allow at all, only {@code policy.sources}: user {@code alice}
 * and a token may reach {@code www.allowed.test}, clients from 127.0.0.2 {@code
 * nodes.allowed.test}.
 */
class BypassTest {
  /** What the client must get. */
  enum Expect {
    S400, S403, S407, ALERT, TUNNEL_CLOSED, CLOSED
  }

  /** The ports a request may name: the recorder's and the fixture's own listeners'. */
  record Env(int origin, ProxyFixture proxy) {
    int own(String listener) {
      return proxy.port(listener);
    }
  }

  /**
   * One attack: on {@code listener} of {@code fixture}; for {@code TUNNEL_CLOSED}, {@code send}
   * is the ClientHello sent inside a tunnel to {@code connect}.
   */
  record Attack(String fixture, String listener, String connect, Function<Env, byte[]> send,
      Expect expect, String reason) {}

  private static final byte[] ACCESS_DENIED = {21, 3, 3, 0, 2, 2, 49};
  static Origins origins;
  static Origins.Origin recorder;
  static TestDns dns;
  static Path dir;
  static final Map<String, ProxyFixture> FIXTURES = new ConcurrentHashMap<>();

  @BeforeAll
  static void start() throws IOException {
    origins = new Origins();
    recorder = origins.recorder();
    dns = new TestDns(Map.of(
        "loopback.allowed.test", List.of("127.0.0.1"),
        "metadata.allowed.test", List.of("169.254.169.254"),
        "ten.allowed.test", List.of("10.1.2.3"),
        "ula.allowed.test", List.of("fd00::1")), false);
    dir = Files.createTempDirectory("bypass");
  }

  @AfterAll
  static void stop() {
    FIXTURES.values().forEach(ProxyFixture::close);
    FIXTURES.clear();
    dns.close();
    origins.close();
  }

  static ProxyFixture fixture(String name) {
    return FIXTURES.computeIfAbsent(name, n -> new ProxyFixture(yaml(n),
        dir.resolve(n + ".jsonl")));
  }

  static String yaml(String fixture) {
    int r = recorder.port;
    if (fixture.equals("loop")) {
      int[] p = new int[3];
      for (int i = 0; i < 3; i++) {
        try {
          p[i] = ProxyFixture.freePort();
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      }
      return """
          listeners:
            - {name: explicit, mode: http-proxy, bind: "127.0.0.1:%1$d"}
            - {name: tls, mode: tls-sni, bind: "127.0.0.1:%2$d", upstreamPort: %2$d}
            - {name: http, mode: http-host, bind: "127.0.0.1:%3$d", upstreamPort: %3$d}
          policy:
            rules:
              - {allow: "*.allowed.test", ports: [%1$d, %2$d, %3$d]}
              - {allow: 127.0.0.0/8, ports: [%1$d, %2$d, %3$d]}
            allowDestinationCidrs: [127.0.0.0/8]
          resolver:
            hosts: {self.allowed.test: 127.0.0.1}
            servers: ["%4$s"]
          timeouts: {dns: 1s, connect: 2s, clientHello: 2s}
          """.formatted(p[0], p[1], p[2], dns.address());
    }
    String listeners = """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
          - {name: tls, mode: tls-sni, bind: "127.0.0.1:0", upstreamPort: %1$d}
          - {name: http, mode: http-host, bind: "127.0.0.1:0", upstreamPort: %1$d}
        timeouts: {dns: 1s, connect: 2s, clientHello: 2s}
        """.formatted(r);
    if (fixture.equals("auth")) {
      return listeners + """
          policy:
            allowDestinationCidrs: [127.0.0.1/32]
            sources:
              - name: users
                users:
                  - {name: alice, passwordHash: "%2$s"}
                  - {name: bob, passwordHash: "%3$s"}
                tokens:
                  - {name: runner, sha256: "%4$s"}
                rules:
                  - {allow: www.allowed.test, ports: [%1$d]}
              - name: nodes
                clients: [127.0.0.2/32]
                rules:
                  - {allow: nodes.allowed.test, ports: [%1$d]}
          resolver:
            hosts:
              www.allowed.test: 127.0.0.1
              nodes.allowed.test: 127.0.0.1
            servers: ["%5$s"]
          """.formatted(r, ALICE_HASH,
          org.egressproxy.auth.PasswordHash.bcrypt(BOB, 4),
          org.egressproxy.auth.PasswordHash.sha256Hex(TOKEN), dns.address());
    }
    if (fixture.equals("strict")) {
      return listeners + """
          policy:
            rules:
              - {allow: "*.allowed.test", ports: [%1$d, 80, 443]}
              - {allow: 0.0.0.0/0, ports: [%1$d, 80, 443]}
              - {allow: "::/0", ports: [%1$d, 80, 443]}
          resolver:
            servers: ["%2$s"]
          """.formatted(r, dns.address());
    }
    return listeners + """
        policy:
          rules:
            - {allow: "*.allowed.test", ports: [%1$d, 80, 443]}
            - {allow: 127.0.0.1/32, ports: [%1$d]}
            - deny: blocked.allowed.test
            - deny: bücher.allowed.test
          allowDestinationCidrs: [127.0.0.1/32]
        resolver:
          hosts:
            www.allowed.test: 127.0.0.1
            blocked.allowed.test: 127.0.0.1
            xn--bcher-kva.allowed.test: 127.0.0.1
            xn--caf-dma.allowed.test: 127.0.0.1
            evil.example: 127.0.0.1
          servers: ["%2$s"]
        %3$s
        """.formatted(r, dns.address(), fixture.equals("noech") ? "tunnel: {refuseEch: true}" : "");
  }

  // ---- the attacks ------------------------------------------------------------------------

  static Function<Env, byte[]> text(String s) {
    return env -> s.replace("{R}", Integer.toString(env.origin()))
        .replace("{EXPLICIT}", Integer.toString(env.own("explicit")))
        .replace("{HTTP}", Integer.toString(env.own("http")))
        .getBytes(StandardCharsets.UTF_8);
  }

  static Function<Env, byte[]> connect(String authority) {
    return text("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
  }

  static Function<Env, byte[]> get(String absolute, String host) {
    return text("GET " + absolute + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  }

  static final String ALICE = "wonderland";
  static final String BOB = "builder";
  static final String TOKEN = "t0ken-for-the-runner";
  static final String ALICE_HASH = org.egressproxy.auth.PasswordHash.bcrypt(ALICE, 4);

  static String basic(String userColonPassword) {
    return "Basic " + java.util.Base64.getEncoder().encodeToString(
        userColonPassword.getBytes(StandardCharsets.UTF_8));
  }

  /** CONNECT www.allowed.test with these Proxy-Authorization headers. */
  static Function<Env, byte[]> connectAs(String... proxyAuthorization) {
    StringBuilder sb = new StringBuilder(
        "CONNECT www.allowed.test:{R} HTTP/1.1\r\nHost: www.allowed.test:{R}\r\n");
    for (String a : proxyAuthorization) {
      sb.append("Proxy-Authorization: ").append(a).append("\r\n");
    }
    return text(sb.append("\r\n").toString());
  }

  static Function<Env, byte[]> host(String host) {
    return text("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  }

  static Function<Env, byte[]> hello(boolean ech, String... names) {
    List<byte[]> raw = new ArrayList<>();
    for (String n : names) {
      raw.add(n.getBytes(StandardCharsets.UTF_8));
    }
    byte[] h = ClientHellos.records(ClientHellos.handshake(raw, List.of("h2"), 0, ech), 1);
    return env -> h;
  }

  static Arguments row(String name, String fixture, String listener, Function<Env, byte[]> send,
      Expect expect, String reason) {
    return Arguments.of(name, new Attack(fixture, listener, null, send, expect, reason));
  }

  static Arguments tunnel(String name, String fixture, String connect,
      Function<Env, byte[]> hello, String reason) {
    return Arguments.of(name,
        new Attack(fixture, "explicit", connect, hello, Expect.TUNNEL_CLOSED, reason));
  }

  static Stream<Arguments> attacks() {
    Expect s400 = Expect.S400;
    Expect s403 = Expect.S403;
    Expect s407 = Expect.S407;
    Expect alert = Expect.ALERT;
    String smuggle = "POST http://www.allowed.test:{R}/ HTTP/1.1\r\nHost: www.allowed.test:{R}\r\n";
    String smuggleHost = "POST / HTTP/1.1\r\nHost: www.allowed.test\r\n";
    return Stream.of(
        // SNI against the CONNECT host (the plain mismatch: DataPlaneTest)
        tunnel("tunnel: SNI names a denied host under the allowed wildcard", "open",
            "www.allowed.test:{R}", hello(false, "blocked.allowed.test"), "sni-mismatch"),
        tunnel("tunnel: two server names, the first one the CONNECT host", "open",
            "www.allowed.test:{R}", hello(false, "www.allowed.test", "evil.example"),
            "sni-mismatch"),
        tunnel("tunnel: SNI with a NUL after the CONNECT host", "open", "www.allowed.test:{R}",
            hello(false, "www.allowed.test\0.evil.example"), "sni-mismatch"),
        tunnel("tunnel: SNI in UTF-8 for the CONNECT host's punycode", "open",
            "xn--caf-dma.allowed.test:{R}", hello(false, "café.allowed.test"), "sni-mismatch"),
        tunnel("tunnel: a ClientHello over 32 KiB", "open", "www.allowed.test:{R}",
            env -> ClientHellos.records(ClientHellos.handshake("www.allowed.test", List.of(),
                40_000, false), 3), "bad-request"),
        row("tls-sni: two server names", "open", "tls",
            hello(false, "www.allowed.test", "evil.example"), alert, "bad-request"),
        row("tls-sni: NUL in the SNI", "open", "tls", hello(false, "www.allowed.test\0.evil"),
            alert, "invalid-host"),
        row("tls-sni: SNI in UTF-8, the Unicode form of a denied name", "open", "tls",
            hello(false, "bücher.allowed.test"), alert, "invalid-host"),
        row("tls-sni: SNI is an IP address", "open", "tls", hello(false, "127.0.0.1"), alert,
            "invalid-host"),
        row("tls-sni: a ClientHello over 32 KiB (closed at once)", "open", "tls",
            env -> ClientHellos.records(ClientHellos.handshake("www.allowed.test", List.of(),
                40_000, false), 3), Expect.CLOSED, "bad-request"),
        // userinfo
        row("CONNECT allowed@evil", "open", "explicit",
            connect("www.allowed.test@evil.example:{R}"), s400, "bad-request"),
        row("CONNECT evil@allowed", "open", "explicit",
            connect("evil.example@www.allowed.test:{R}"), s400, "bad-request"),
        row("absolute-form allowed@evil", "open", "explicit",
            get("http://www.allowed.test:{R}@evil.example/", "evil.example"), s400,
            "bad-request"),
        row("absolute-form evil@allowed", "open", "explicit",
            get("http://evil.example@www.allowed.test:{R}/", "www.allowed.test:{R}"), s400,
            "bad-request"),
        row("Host evil@allowed", "open", "http", host("evil.example@www.allowed.test"), s400,
            "bad-request"),
        // absolute URI against Host (the allowed-URI, evil-Host case: DataPlaneTest)
        row("absolute-form evil, Host allowed", "open", "explicit",
            get("http://evil.example:{R}/", "www.allowed.test:{R}"), s400, "bad-request"),
        // characters in host names
        row("CONNECT %-encoded dot", "open", "explicit", connect("www%2eallowed.test:{R}"), s400,
            "invalid-host"),
        row("CONNECT NUL in the host", "open", "explicit",
            connect("www.allowed.test\0.evil.example:{R}"), s400, "bad-request"),
        row("CONNECT CR in the host", "open", "explicit",
            connect("www.allowed.test\r.evil.example:{R}"), s400, "bad-request"),
        row("CONNECT LF in the host", "open", "explicit",
            connect("www.allowed.test\n.evil.example:{R}"), s400, "bad-request"),
        row("CONNECT space in the host", "open", "explicit",
            connect("www.allowed.test .evil.example:{R}"), s400, "bad-request"),
        row("CONNECT tab in the host", "open", "explicit",
            connect("www.allowed.test\t.evil.example:{R}"), s400, "bad-request"),
        row("absolute-form %-encoded slash", "open", "explicit",
            get("http://www.allowed.test%2f.evil.example:{R}/", "www.allowed.test:{R}"), s400,
            "bad-request"),
        row("Host with a tab", "open", "http", host("www.allowed.test\t.evil.example"), s400,
            "bad-request"),
        row("Host with %00", "open", "http", host("www.allowed.test%00.evil.example"), s400,
            "invalid-host"),
        row("Host with NUL", "open", "http", host("www.allowed.test\0.evil.example"), s400,
            "bad-request"),
        // numeric IPv4 shorthands (127.0.0.1 is allowed here: reading one as an address would
        // reach the recorder)
        row("CONNECT decimal 2130706433", "open", "explicit", connect("2130706433:{R}"), s400,
            "invalid-host"),
        row("CONNECT hex 0x7f.1", "open", "explicit", connect("0x7f.1:{R}"), s400,
            "invalid-host"),
        row("CONNECT hex 0x7f000001", "open", "explicit", connect("0x7f000001:{R}"), s400,
            "invalid-host"),
        row("CONNECT octal 017700000001", "open", "explicit", connect("017700000001:{R}"), s400,
            "invalid-host"),
        row("CONNECT octal quad 0177.0.0.01", "open", "explicit", connect("0177.0.0.01:{R}"),
            s400, "invalid-host"),
        row("CONNECT short 127.1", "open", "explicit", connect("127.1:{R}"), s400,
            "invalid-host"),
        row("absolute-form short 127.1", "open", "explicit",
            get("http://127.1:{R}/", "127.1:{R}"), s400, "invalid-host"),
        row("Host decimal 2130706433", "open", "http", host("2130706433"), s400,
            "invalid-host"),
        row("tls-sni SNI 127.1", "open", "tls", hello(false, "127.1"), alert, "invalid-host"),
        // IP literals: every address is allowed by a CIDR rule here, only the private ranges
        // stand in the way
        row("CONNECT 127.0.0.1", "strict", "explicit", connect("127.0.0.1:{R}"), s403,
            "private-destination"),
        row("CONNECT [::1]", "strict", "explicit", connect("[::1]:{R}"), s403,
            "private-destination"),
        row("CONNECT IPv4-mapped [::ffff:127.0.0.1]", "strict", "explicit",
            connect("[::ffff:127.0.0.1]:{R}"), s403, "private-destination"),
        row("CONNECT IPv4-mapped hex [::ffff:7f00:1]", "strict", "explicit",
            connect("[::ffff:7f00:1]:{R}"), s403, "private-destination"),
        row("CONNECT IPv4-compatible [::127.0.0.1]", "strict", "explicit",
            connect("[::127.0.0.1]:{R}"), s403, "private-destination"),
        row("CONNECT NAT64 of the metadata address", "strict", "explicit",
            connect("[64:ff9b::a9fe:a9fe]:80"), s403, "private-destination"),
        row("CONNECT 6to4 of the metadata address", "strict", "explicit",
            connect("[2002:a9fe:a9fe::1]:80"), s403, "private-destination"),
        row("CONNECT [fd00::1]", "strict", "explicit", connect("[fd00::1]:{R}"), s403,
            "private-destination"),
        row("CONNECT 169.254.169.254", "strict", "explicit", connect("169.254.169.254:80"),
            s403, "private-destination"),
        row("CONNECT IPv6 with a zone id", "strict", "explicit", connect("[fe80::1%25lo]:{R}"),
            s400, "invalid-host"),
        row("absolute-form [::ffff:169.254.169.254]", "strict", "explicit",
            get("http://[::ffff:169.254.169.254]/latest/meta-data/", "[::ffff:169.254.169.254]"),
            s403, "private-destination"),
        row("Host [::1]", "strict", "http", host("[::1]"), s403, "private-destination"),
        row("tls-sni SNI ::1", "strict", "tls", hello(false, "::1"), alert, "invalid-host"),
        // DNS rebinding: allowed names whose name server answers a private address
        row("rebinding: CONNECT to a name resolving to 127.0.0.1", "strict", "explicit",
            connect("loopback.allowed.test:{R}"), s403, "private-destination"),
        row("rebinding: CONNECT to a name resolving to 169.254.169.254", "strict", "explicit",
            connect("metadata.allowed.test:80"), s403, "private-destination"),
        row("rebinding: CONNECT to a name resolving to 10.1.2.3", "strict", "explicit",
            connect("ten.allowed.test:{R}"), s403, "private-destination"),
        row("rebinding: CONNECT to a name resolving to fd00::1", "strict", "explicit",
            connect("ula.allowed.test:{R}"), s403, "private-destination"),
        row("rebinding: absolute-form to the metadata address", "strict", "explicit",
            get("http://metadata.allowed.test/latest/meta-data/", "metadata.allowed.test"), s403,
            "private-destination"),
        row("rebinding: Host resolving to the metadata address", "strict", "http",
            host("metadata.allowed.test"), s403, "private-destination"),
        row("rebinding: SNI resolving to 127.0.0.1", "strict", "tls",
            hello(false, "loopback.allowed.test"), alert, "private-destination"),
        // trailing dots, case, Unicode and punycode
        row("CONNECT denied name in capitals with a trailing dot", "open", "explicit",
            connect("BLOCKED.Allowed.TEST.:{R}"), s403, "deny-rule"),
        row("CONNECT denied name with two trailing dots", "open", "explicit",
            connect("blocked.allowed.test..:{R}"), s400, "invalid-host"),
        row("absolute-form denied name, mixed case, trailing dot", "open", "explicit",
            get("http://Blocked.Allowed.Test.:{R}/", "Blocked.Allowed.Test.:{R}"), s403,
            "deny-rule"),
        row("Host denied name, capitals, trailing dot", "open", "http",
            host("BLOCKED.allowed.test."), s403, "deny-rule"),
        row("tls-sni denied name, mixed case, trailing dot", "open", "tls",
            hello(false, "Blocked.Allowed.Test."), alert, "deny-rule"),
        row("CONNECT punycode of a denied Unicode name, in capitals", "open", "explicit",
            connect("XN--BCHER-KVA.allowed.test:{R}"), s403, "deny-rule"),
        row("tls-sni punycode of a denied Unicode name", "open", "tls",
            hello(false, "xn--bcher-kva.allowed.test"), alert, "deny-rule"),
        row("CONNECT a denied name in UTF-8", "open", "explicit",
            connect("bücher.allowed.test:{R}"), s400, "bad-request"),
        row("CONNECT a denied name in full-width letters", "open", "explicit",
            connect("ｂｌｏｃｋｅｄ.allowed.test:{R}"), s400, "bad-request"),
        row("Host a denied name in UTF-8", "open", "http", host("bücher.allowed.test"), s400,
            "bad-request"),
        row("tls-sni a denied name in full-width letters", "open", "tls",
            hello(false, "ｂｌｏｃｋｅｄ.allowed.test"), alert, "invalid-host"),
        // request smuggling shapes, on both HTTP listeners
        row("absolute-form Content-Length with Transfer-Encoding", "open", "explicit",
            text(smuggle + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            s400, "bad-request"),
        row("absolute-form two Content-Lengths", "open", "explicit",
            text(smuggle + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), s400,
            "bad-request"),
        row("absolute-form obsolete line folding", "open", "explicit",
            text(smuggle + "X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n"), s400,
            "bad-request"),
        row("absolute-form bare LF", "open", "explicit",
            text("GET http://www.allowed.test:{R}/ HTTP/1.1\nHost: www.allowed.test:{R}\n\n"),
            s400, "bad-request"),
        row("absolute-form two Host headers", "open", "explicit",
            text(smuggle + "Host: evil.example\r\nContent-Length: 0\r\n\r\n"), s400,
            "bad-request"),
        row("absolute-form Transfer-Encoding chunked, identity", "open", "explicit",
            text(smuggle + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"),
            s400, "bad-request"),
        row("Host Content-Length with Transfer-Encoding", "open", "http",
            text(smuggleHost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            s400, "bad-request"),
        row("Host two Content-Lengths", "open", "http",
            text(smuggleHost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), s400,
            "bad-request"),
        row("Host obsolete line folding", "open", "http",
            text(smuggleHost + "X-A: a\r\n\tb\r\nContent-Length: 0\r\n\r\n"), s400,
            "bad-request"),
        row("Host bare LF", "open", "http", text("GET / HTTP/1.1\nHost: www.allowed.test\n\n"),
            s400, "bad-request"),
        row("Host two Host headers, the second denied", "open", "http",
            text("GET / HTTP/1.1\r\nHost: www.allowed.test\r\nHost: evil.example\r\n\r\n"), s400,
            "bad-request"),
        row("Host space before the colon", "open", "http",
            text("GET / HTTP/1.1\r\nHost : evil.example\r\nHost: www.allowed.test\r\n\r\n"),
            s400, "bad-request"),
        // HTTP/2 with prior knowledge: refused with a 400 that says HTTP/1.1 only
        row("HTTP/2 preface on http-proxy", "open", "explicit",
            text("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), s400, "bad-request"),
        row("HTTP/2 preface on http-host", "open", "http", text("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            s400, "bad-request"),
        // Encrypted Client Hello, refused under tunnel.refuseEch (decided on the outer SNI and
        // logged ech: true otherwise: DataPlaneTest)
        row("tls-sni ECH refused", "noech", "tls", hello(true, "www.allowed.test"), alert,
            "ech-refused"),
        tunnel("tunnel: ECH refused", "noech", "www.allowed.test:{R}",
            hello(true, "www.allowed.test"), "ech-refused"),
        // credentials and sources: no way into a source without its credentials or address
        row("auth: CONNECT without credentials", "auth", "explicit", connectAs(), s407,
            "auth-required"),
        row("auth: a wrong password", "auth", "explicit",
            connectAs(basic("alice:" + ALICE + "x")), s407, "auth-failed"),
        row("auth: another user's password", "auth", "explicit",
            connectAs(basic("alice:" + BOB)), s407, "auth-failed"),
        row("auth: a user that does not exist", "auth", "explicit",
            connectAs(basic("mallory:" + ALICE)), s407, "auth-failed"),
        row("auth: user name with a trailing space", "auth", "explicit",
            connectAs(basic("alice :" + ALICE)), s407, "auth-failed"),
        row("auth: Basic without a colon", "auth", "explicit", connectAs(basic("alice")), s407,
            "auth-failed"),
        row("auth: Basic that is not base64", "auth", "explicit",
            connectAs("Basic alice:" + ALICE), s407, "auth-failed"),
        row("auth: the stored password hash as the password", "auth", "explicit",
            connectAs(basic("alice:" + ALICE_HASH)), s407, "auth-failed"),
        row("auth: Bearer with the token's stored SHA-256", "auth", "explicit",
            connectAs("Bearer " + org.egressproxy.auth.PasswordHash.sha256Hex(TOKEN)), s407,
            "auth-failed"),
        row("auth: an unknown scheme", "auth", "explicit", connectAs("Digest username=alice"),
            s407, "auth-failed"),
        row("auth: a wrong header first, the right one second", "auth", "explicit",
            connectAs(basic("mallory:x"), basic("alice:" + ALICE)), s407, "auth-failed"),
        row("auth: absolute-form with a wrong password", "auth", "explicit",
            text("GET http://www.allowed.test:{R}/ HTTP/1.1\r\nHost: www.allowed.test:{R}\r\n"
                + "Proxy-Authorization: " + basic("alice:nope") + "\r\n\r\n"), s407,
            "auth-failed"),
        row("auth: right credentials, a host only another source may reach", "auth", "explicit",
            text("CONNECT nodes.allowed.test:{R} HTTP/1.1\r\nHost: nodes.allowed.test:{R}\r\n"
                + "Proxy-Authorization: " + basic("alice:" + ALICE) + "\r\n\r\n"), s403,
            "no-match"),
        row("auth: right credentials on the transparent http-host listener (not used)", "auth",
            "http", text("GET / HTTP/1.1\r\nHost: www.allowed.test\r\nProxy-Authorization: "
                + basic("alice:" + ALICE) + "\r\n\r\n"), s403, "no-source"),
        // loops: our own listeners through ourselves, with 127.0.0.0/8 allowed
        row("loop: CONNECT to our own listener by name", "loop", "explicit",
            connect("self.allowed.test:{EXPLICIT}"), s403, "loop"),
        row("loop: CONNECT to our own listener by address", "loop", "explicit",
            connect("127.0.0.1:{EXPLICIT}"), s403, "loop"),
        row("loop: CONNECT to our http-host listener", "loop", "explicit",
            connect("self.allowed.test:{HTTP}"), s403, "loop"),
        row("loop: absolute-form to our http-host listener", "loop", "explicit",
            get("http://self.allowed.test:{HTTP}/", "self.allowed.test:{HTTP}"), s403, "loop"),
        row("loop: http-host forwarding to itself", "loop", "http", host("self.allowed.test"),
            s403, "loop"),
        row("loop: tls-sni forwarding to itself", "loop", "tls", hello(false, "self.allowed.test"),
            alert, "loop"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("attacks")
  void isRefusedLoggedAndNeverReachesTheOrigin(String name, Attack a) throws Exception {
    ProxyFixture p = fixture(a.fixture());
    Env env = new Env(recorder.port, p);
    int originBytes = recorder.receivedBytes().length;
    int logLines = lines(p).size();
    int clientPort;
    try (Socket s = DataPlaneTest.socket(p.port(a.listener()))) {
      clientPort = s.getLocalPort();
      InputStream in = s.getInputStream();
      if (a.expect() == Expect.TUNNEL_CLOSED) {
        assertThat(DataPlaneTest.connect(s, new String(text(a.connect()).apply(env),
            StandardCharsets.UTF_8))).contains(" 200 ");
      }
      s.getOutputStream().write(a.send().apply(env));
      s.getOutputStream().flush();
      switch (a.expect()) {
        case S400, S403, S407 -> {
          String status = DataPlaneTest.readHead(in).split("\r\n")[0];
          assertThat(status).as("status line").startsWith("HTTP/1.1 " + a.expect().name()
              .substring(1) + " ");
        }
        case ALERT -> assertThat(in.readAllBytes()).as("a fatal access_denied alert, then close")
            .isEqualTo(ACCESS_DENIED);
        case TUNNEL_CLOSED, CLOSED -> {
          try {
            assertThat(in.read()).as("closed").isEqualTo(-1);
          } catch (java.net.SocketException reset) {
            // closed with our bytes unread: a reset, also a close
          }
        }
        default -> throw new IllegalStateException();
      }
    }
    String client = "\"client\":\"127.0.0.1:" + clientPort + "\"";
    List<String> added = awaitLine(p, logLines, l -> l.contains(client)
        && l.contains("\"event\":\"decision\"") && l.contains("\"decision\":\"deny\"")
        && l.contains("\"reason\":\"" + a.reason() + "\""), "a deny with reason " + a.reason());
    assertThat(added).as("decision log lines of this attack: no other connection (no loop)")
        .allSatisfy(l -> assertThat(l).contains(client));
    assertThat(recorder.receivedBytes().length - originBytes).as("bytes at the origin")
        .isZero();
  }

  static List<String> lines(ProxyFixture p) throws IOException {
    return Files.exists(p.logFile) ? Files.readAllLines(p.logFile) : List.of();
  }

  /** Waits for a line matching {@code wanted} after line {@code from}; returns the new lines. */
  static List<String> awaitLine(ProxyFixture p, int from,
      java.util.function.Predicate<String> wanted, String what) throws Exception {
    Instant deadline = Instant.now().plus(Duration.ofSeconds(5));
    while (true) {
      List<String> all = lines(p);
      List<String> added = all.subList(Math.min(from, all.size()), all.size());
      if (added.stream().anyMatch(wanted)) {
        Thread.sleep(50); // anything else this attack caused would be logged by now
        all = lines(p);
        return all.subList(Math.min(from, all.size()), all.size());
      }
      if (Instant.now().isAfter(deadline)) {
        throw new AssertionError("no decision log line with " + what + "; new lines: " + added);
      }
      Thread.sleep(20);
    }
  }
}
