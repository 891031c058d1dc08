package org.egressproxy.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.abort;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The deployment artefacts stood up for real, by the scripts an operator can also run by hand
 * ({@code deploy/check-image.sh}, {@code deploy/check-appliance.sh}; what each checks is in its
 * header and in deploy/README.md). Each fails the test when one of its checks fails, and skips it,
 * with the script's reason, where it cannot run here (not root, no Docker engine to be had, the
 * appliance's ports taken, no Debian mirror). {@code -Degress.deployChecks=false} skips both on
 * purpose. About three minutes and two minutes.
 */
class DeployChecksTest {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));

  /** The Dockerfile built and the image run as the README says. */
  @Test
  void theContainerImageBuildsRunsAndBehavesAsDocumented() throws Exception {
    runCheck("deploy/check-image.sh");
  }

  /**
   * A VM appliance from deploy/cloud-init.yaml (a Debian system container booted with it as
   * user data): the proxy served by the hardened unit, its lifecycle under systemd.
   */
  @Test
  void anApplianceFromTheCloudInitFileServesUnderItsHardenedUnit() throws Exception {
    runCheck("deploy/check-appliance.sh");
  }

  private static void runCheck(String script) throws Exception {
    assumeTrue(!"false".equals(System.getProperty("egress.deployChecks")),
        "-Degress.deployChecks=false: " + script + " skipped");
    assumeTrue(System.getProperty("os.name").startsWith("Linux"),
        script + " needs Linux: skipped");
    Path out = Files.createTempFile("deploy-check", ".log");
    try {
      Process p = new ProcessBuilder("bash", REPO.resolve(script).toString())
          .redirectErrorStream(true).redirectOutput(out.toFile()).start();
      if (!p.waitFor(15, TimeUnit.MINUTES)) {
        p.destroy();
        p.waitFor(60, TimeUnit.SECONDS); // its trap stops the engine and container it started
        p.destroyForcibly();
        throw new AssertionError(script + " did not finish in 15 minutes:\n"
            + Files.readString(out, StandardCharsets.UTF_8));
      }
      List<String> lines = Files.readAllLines(out, StandardCharsets.UTF_8);
      lines.forEach(l -> System.out.println(script + ": " + l));
      String all = String.join("\n", lines);
      if (p.exitValue() == 2) {
        abort(script + " could not run here: " + all);
      }
      assertThat(p.exitValue()).as("%s's exit status; its output:\n%s", script, all).isZero();
      assertThat(lines).as("every check it made passed").noneMatch(l -> l.contains(" FAIL "))
          .anyMatch(l -> l.contains("every check passed"));
    } finally {
      Files.deleteIfExists(out);
    }
  }
}
