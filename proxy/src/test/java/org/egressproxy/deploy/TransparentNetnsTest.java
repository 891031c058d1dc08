package org.egressproxy.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import org.egressproxy.cli.CliProcessTest;
import org.egressproxy.it.RealClientsTest;
import org.egressproxy.it.RealClientsTest.Run;
import org.egressproxy.it.TestCerts;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The transparent path end to end, as on a hub appliance: three network namespaces
 *
 * <pre>
 *   client 198.51.100.2 ── 198.51.100.1 appliance 203.0.113.1 ── 203.0.113.2 origin
 * </pre>
 *
 * <p>The client's default route is the appliance, as a spoke's route table sends 0.0.0.0/0 to
 * the load balancer. In the appliance, {@code deploy/nftables/egress-proxy-tproxy.sh apply}
 * (the real files) intercepts ports 443 and 80, and the proxy runs with transparent tls-sni and
 * http-host listeners. The origin (its own JVM, {@link NetnsOrigin}) records every connection.
 * curl and openssl in the client namespace have no proxy settings at all: they connect to the
 * origin's address, and the appliance takes the connection over.
 *
 * <p>Linux as root with iproute2 and nftables (.ci/run installs nftables); skipped with a
 * message otherwise. Namespace names are unique per run; they are removed afterwards, also
 * when the test fails.
 */
class TransparentNetnsTest {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));
  private static final String CLIENT_IP = "198.51.100.2";
  private static final String ORIGIN_IP = "203.0.113.2";
  /** Routed through the appliance like any other address, but no host has it. */
  private static final String ELSEWHERE = "203.0.113.99";
  private static final String ID = Long.toHexString(System.nanoTime() & 0xffffffL);
  private static final String CLIENT = "epc-" + ID;
  private static final String APPLIANCE = "epa-" + ID;
  private static final String ORIGIN = "epo-" + ID;
  private static final List<String> CREATED = new ArrayList<>();
  private static final List<Process> PROCESSES = new ArrayList<>();

  @TempDir static Path dir;
  static Path ca;
  static Path decisions;
  static BlockingQueue<String> originOut;
  static BlockingQueue<String> proxyOut;

  @BeforeAll
  static void setUp() throws Exception {
    assumeTrue(System.getProperty("os.name").startsWith("Linux"),
        "network namespaces need Linux: test skipped");
    assumeTrue(RealClientsTest.installed("ip"),
        "iproute2 is not installed (apt-get install iproute2): test skipped");
    assumeTrue(RealClientsTest.installed("nft"),
        "nftables is not installed (apt-get install nftables; .ci/run does): test skipped");
    assumeTrue(RealClientsTest.installed("curl") && RealClientsTest.installed("openssl"),
        "curl or openssl is not installed (.ci/run installs them): test skipped");
    Run probe = RealClientsTest.run("", "ip", "netns", "add", CLIENT);
    assumeTrue(probe.status() == 0, "cannot create a network namespace (needs root): "
        + probe.output().strip() + "; test skipped");
    CREATED.add(CLIENT);
    for (String ns : List.of(APPLIANCE, ORIGIN)) {
      sh("ip netns add " + ns);
      CREATED.add(ns);
    }
    // veth pairs: client <-> appliance <-> origin
    sh("ip link add c" + ID + " netns " + CLIENT + " type veth peer name a" + ID + " netns "
        + APPLIANCE);
    sh("ip link add o" + ID + " netns " + ORIGIN + " type veth peer name b" + ID + " netns "
        + APPLIANCE);
    in(CLIENT, "ip addr add " + CLIENT_IP + "/24 dev c" + ID);
    in(APPLIANCE, "ip addr add 198.51.100.1/24 dev a" + ID);
    in(APPLIANCE, "ip addr add 203.0.113.1/24 dev b" + ID);
    in(ORIGIN, "ip addr add " + ORIGIN_IP + "/24 dev o" + ID);
    for (String[] up : new String[][] {{CLIENT, "c"}, {APPLIANCE, "a"}, {APPLIANCE, "b"},
        {ORIGIN, "o"}}) {
      in(up[0], "ip link set " + up[1] + ID + " up");
    }
    for (String ns : CREATED) {
      in(ns, "ip link set lo up"); // TPROXY's local route goes through lo
    }
    in(CLIENT, "ip route add default via 198.51.100.1");
    in(ORIGIN, "ip route add default via 203.0.113.1");

    // The repository's rules, with this test's client network.
    Path script = REPO.resolve("deploy/nftables/egress-proxy-tproxy.sh").toAbsolutePath();
    Run applied = RealClientsTest.run("", "ip", "netns", "exec", APPLIANCE, "env",
        "TLS_PORT=8443", "HTTP_PORT=8080", "CLIENT_CIDRS=198.51.100.0/24", "sh",
        script.toString(), "apply");
    assertThat(applied.status()).as(applied.output()).isZero();

    TestCerts certs = new TestCerts("allowed.test", "denied.test");
    ca = Files.writeString(dir.resolve("ca.pem"), certs.caPem());
    Path keystore = dir.resolve("origin.p12");
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    ks.setKeyEntry("origin", certs.serverKey.getPrivate(), "changeit".toCharArray(),
        new Certificate[] {certs.server, certs.ca});
    try (OutputStream out = Files.newOutputStream(keystore)) {
      ks.store(out, "changeit".toCharArray());
    }
    ProcessBuilder origin = inNamespace(ORIGIN, CliProcessTest.javaMain(dir,
        NetnsOrigin.class.getName(), ORIGIN_IP, keystore.toString(), "changeit"));
    Process o = origin.start();
    PROCESSES.add(o);
    originOut = CliProcessTest.lines(o);

    decisions = dir.resolve("decisions.jsonl");
    Path config = Files.writeString(dir.resolve("proxy.yaml"), """
        listeners:
          - {name: tls, mode: tls-sni, bind: "0.0.0.0:8443", transparent: true}
          - {name: http, mode: http-host, bind: "0.0.0.0:8080", transparent: true}
        admin:
          bind: 127.0.0.1:9090
        policy:
          rules:
            - allow: allowed.test
              ports: [443, 80]
          allowDestinationCidrs: [203.0.113.0/24]
        resolver:
          hosts:
            allowed.test: 203.0.113.2
            denied.test: 203.0.113.2
          servers: ["127.0.0.1:53"]
        timeouts: {connect: 5s, clientHello: 5s, dns: 1s}
        shutdown: {drain: 1s}
        decisionLog:
          path: %s
        """.formatted(decisions));
    Process p = inNamespace(APPLIANCE, CliProcessTest.java(dir, "run", "--config",
        config.toString())).start();
    PROCESSES.add(p);
    proxyOut = CliProcessTest.lines(p);
    CliProcessTest.await(proxyOut, "ready.");
    CliProcessTest.await(originOut, "origin ready");
  }

  @AfterAll
  static void tearDown() throws Exception {
    for (Process p : PROCESSES) {
      p.destroy();
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    }
    for (String ns : CREATED) { // removing a namespace removes its veth ends too
      RealClientsTest.run("", "ip", "netns", "del", ns);
    }
  }

  @Test
  void httpsAndHttpFromAClientWithoutProxySettingsAreInterceptedAndReachTheOrigin()
      throws Exception {
    Run https = client("curl", "-sS", "--max-time", "15", "--http2", "--cacert", ca.toString(),
        "--resolve", "allowed.test:443:" + ORIGIN_IP, "https://allowed.test/tls-path");
    assertThat(https.status()).as(https.output()).isZero();
    assertThat(https.output()).contains("origin saw host=allowed.test path=/tls-path");
    // curl offered h2 and http/1.1; the origin saw exactly that list, from the appliance
    assertThat(CliProcessTest.await(originOut, "tls peer="))
        .isEqualTo("tls peer=203.0.113.1 sni=allowed.test offered=h2,http/1.1"
            + " selected=http/1.1");

    Run http = client("curl", "-sS", "--max-time", "15", "http://allowed.test/plain-path",
        "--resolve", "allowed.test:80:" + ORIGIN_IP);
    assertThat(http.status()).as(http.output()).isZero();
    assertThat(http.output()).contains("origin saw host=allowed.test path=/plain-path");
    assertThat(CliProcessTest.await(originOut, "http peer="))
        .isEqualTo("http peer=203.0.113.1 host=allowed.test path=/plain-path");

    // konnectivity's ALPN, as the AKS agent sends it, chosen by the origin through the proxy;
    // sent to an address where nothing listens: the proxy connects where allowed.test resolves
    Run konnectivity = client("openssl", "s_client", "-connect", ELSEWHERE + ":443",
        "-servername", "allowed.test", "-alpn", "konnectivity,h2", "-CAfile", ca.toString(),
        "-verify_return_error");
    assertThat(konnectivity.output()).contains("ALPN protocol: konnectivity")
        .contains("Verify return code: 0 (ok)");
    assertThat(CliProcessTest.await(originOut, "offered=konnectivity"))
        .contains("offered=konnectivity,h2 selected=konnectivity");

    awaitLog("\"event\":\"close\",\"listener\":\"http\"");
    // the konnectivity tunnel's close line comes once both of its sides are done: after
    // openssl has gone, so wait for it rather than read the log at once
    List<String> log = awaitLog("\"event\":\"close\"", "\"originalDst\":\"" + ELSEWHERE
        + ":443\"");
    assertThat(log).filteredOn(l -> l.contains("\"listener\":\"tls\"")).hasSizeGreaterThan(2)
        .allSatisfy(l -> assertThat(l).contains("\"decision\":\"allow\"")
            .contains("\"client\":\"" + CLIENT_IP + ":").contains("\"originalDst\":\""))
        .anySatisfy(l -> assertThat(l).contains("\"originalDst\":\"" + ORIGIN_IP + ":443\""));
    // the address the client chose is logged; the proxy connected to the one it resolved
    assertThat(log).filteredOn(l -> l.contains("\"originalDst\":\"" + ELSEWHERE + ":443\""))
        .filteredOn(l -> l.contains("\"event\":\"close\"")).singleElement().asString()
        .contains("\"alpn\":[\"konnectivity\",\"h2\"]")
        .contains("\"upstream\":\"" + ORIGIN_IP + ":443\"");
    assertThat(log).filteredOn(l -> l.contains("\"listener\":\"http\"")).first().asString()
        .contains("\"host\":\"allowed.test\"")
        .contains("\"originalDst\":\"" + ORIGIN_IP + ":80\"");
  }

  @Test
  void aDeniedNameIsRefusedAndNeverReachesTheOrigin() throws Exception {
    Run tls = client("curl", "-sS", "--max-time", "15", "--cacert", ca.toString(),
        "--resolve", "denied.test:443:" + ORIGIN_IP, "https://denied.test/");
    assertThat(tls.status()).as(tls.output()).isEqualTo(35); // TLS handshake failed
    assertThat(tls.output()).contains("alert access denied");
    Run http = client("curl", "-sS", "--max-time", "15", "-o", "/dev/null", "-w",
        "%{http_code}", "--resolve", "denied.test:80:" + ORIGIN_IP, "http://denied.test/");
    assertThat(http.output()).isEqualTo("403");
    List<String> log = awaitLog("\"host\":\"denied.test\",\"port\":80");
    assertThat(log).filteredOn(l -> l.contains("denied.test")).hasSize(2)
        .allSatisfy(l -> assertThat(l).contains("\"decision\":\"deny\"")
            .contains("\"reason\":\"no-match\"").contains("\"originalDst\":\"" + ORIGIN_IP));
    // the origin never heard of it: every line it printed names another host
    Thread.sleep(300);
    List<String> seen = new ArrayList<>();
    originOut.drainTo(seen);
    assertThat(seen).noneSatisfy(l -> assertThat(l).contains("denied.test"));
  }

  // ---- helpers --------------------------------------------------------------------------

  private static Run client(String... cmd) throws Exception {
    List<String> full = new ArrayList<>(List.of("ip", "netns", "exec", CLIENT));
    full.addAll(List.of(cmd));
    return RealClientsTest.run("", full.toArray(new String[0]));
  }

  private static void sh(String command) throws Exception {
    Run r = RealClientsTest.run("", command.split(" "));
    assertThat(r.status()).as(command + ": " + r.output()).isZero();
  }

  private static void in(String ns, String command) throws Exception {
    sh("ip netns exec " + ns + " " + command);
  }

  private static ProcessBuilder inNamespace(String ns, ProcessBuilder pb) {
    pb.command().addAll(0, List.of("ip", "netns", "exec", ns));
    return pb;
  }

  /** The decision log once a line containing {@code fragment} is in it (10 s at most). */
  /** The decision log once a line contains every one of {@code fragments}. */
  private static List<String> awaitLog(String... fragments) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    List<String> lines = List.of();
    while (System.nanoTime() < deadline) {
      lines = Files.exists(decisions) ? Files.readAllLines(decisions) : List.of();
      if (lines.stream().anyMatch(l -> java.util.Arrays.stream(fragments).allMatch(l::contains))) {
        return lines;
      }
      Thread.sleep(100);
    }
    throw new AssertionError("no decision log line containing " + List.of(fragments)
        + "; log: " + lines);
  }
}
