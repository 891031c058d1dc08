package org.egressproxy.match;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.egressproxy.policy.Destination;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * IpLiteral never resolves a name: a bracketed word of hex letters and no colon ({@code [cafe]})
 * once reached InetAddress.getByName, which looked it up with the system resolver, blocking an
 * event loop. Run in a child JVM whose only name service is a hosts file that does know the
 * name ({@code jdk.net.hosts.file}), so that a lookup would show and no query leaves the machine.
 */
class IpLiteralNoLookupTest {

  /** The child: what the proxy makes of CONNECT [cafe]:443 and [2130706433]:443. */
  public static void main(String[] args) {
    for (String h : args) {
      Destination d = Destination.of(h, 443, Protocol.TLS);
      System.out.println(h + " -> valid=" + d.valid() + " ip=" + d.ip());
    }
  }

  @Test
  void aBracketedWordIsNeverLookedUp(@TempDir Path dir) throws Exception {
    Path hosts = dir.resolve("hosts");
    Files.writeString(hosts, "203.0.113.9 cafe\n127.0.0.1 localhost\n");
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java")
        .toString(), "-Djdk.net.hosts.file=" + hosts, "-cp", System.getProperty("java.class.path"),
        IpLiteralNoLookupTest.class.getName(), "[cafe]", "[2130706433]")
        .redirectErrorStream(true).start();
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    List<String> out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8)
        .lines().toList();
    assertThat(out).as("bracketed non-literals must be invalid, never resolved")
        .containsExactly("[cafe] -> valid=false ip=null", "[2130706433] -> valid=false ip=null");
  }
}
