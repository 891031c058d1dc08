package org.egressproxy.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.abort;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The deployment artefacts stood up for real, by the scripts an operator can also run by hand
 * ({@code deploy/check-image.sh}, {@code deploy/check-appliance.sh}; what each checks is in its
 * header and in deploy/README.md). Each fails the test when one of its checks fails, and skips it,
 * with the script's reason, where it cannot run here (not root, no Docker engine to be had, the
 * appliance's ports taken, no Debian mirror). {@code -Degress.deployChecks=false} skips both on
 * purpose.
 *
 * <p>Both scripts start together before either test and run side by side: 4.4 minutes for the
 * two on 2 cores, against 6.5 one after the other; much of each is waiting (downloads, boot,
 * the proxy's start), which the other fills. They keep out of each other's way: a Docker engine
 * each when none is running (the appliance's containers are on the host's network, so only the
 * image check's take addresses on the bridge the engines share), their own ports, names and
 * work directories. Nothing else in the suite runs meanwhile (this class runs on its own, as
 * every class does).
 */
class DeployChecksTest {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));
  private static final String IMAGE = "deploy/check-image.sh";
  private static final String APPLIANCE = "deploy/check-appliance.sh";
  private static final Map<String, Run> RUNS = new LinkedHashMap<>();

  private record Run(Process process, Path out) {}

  /** Why neither script runs here, or {@code null}. */
  private static String skipped() {
    if ("false".equals(System.getProperty("egress.deployChecks"))) {
      return "-Degress.deployChecks=false";
    }
    return System.getProperty("os.name").startsWith("Linux") ? null : "they need Linux";
  }

  @BeforeAll
  static void startBoth() throws IOException {
    if (skipped() != null) {
      return; // each test says why it skips
    }
    for (String script : List.of(IMAGE, APPLIANCE)) {
      Path out = Files.createTempFile("deploy-check", ".log");
      Process p = new ProcessBuilder("bash", REPO.resolve(script).toString())
          .redirectErrorStream(true)
          .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
          .redirectOutput(out.toFile())
          .start();
      RUNS.put(script, new Run(p, out));
    }
  }

  /** A test that failed early leaves its script running: stop it (its trap cleans up). */
  @AfterAll
  static void stopLeftovers() throws Exception {
    for (Run r : RUNS.values()) {
      stop(r.process());
      Files.deleteIfExists(r.out());
    }
    RUNS.clear();
  }

  /** The Dockerfile built and the image run as the README says. */
  @Test
  void theContainerImageBuildsRunsAndBehavesAsDocumented() throws Exception {
    awaitCheck(IMAGE);
  }

  /**
   * A VM appliance from deploy/cloud-init.yaml (a Debian system container booted with it as
   * user data): the proxy served by the hardened unit, its lifecycle under systemd.
   */
  @Test
  void anApplianceFromTheCloudInitFileServesUnderItsHardenedUnit() throws Exception {
    awaitCheck(APPLIANCE);
  }

  private static void awaitCheck(String script) throws Exception {
    assumeTrue(skipped() == null, () -> skipped() + ": " + script + " skipped");
    Run run = RUNS.get(script);
    assertThat(run).as("%s was started before the tests", script).isNotNull();
    Process p = run.process();
    if (!p.waitFor(20, TimeUnit.MINUTES)) {
      stop(p);
      throw new AssertionError(script + " did not finish in 20 minutes:\n"
          + Files.readString(run.out(), StandardCharsets.UTF_8));
    }
    List<String> lines = Files.readAllLines(run.out(), StandardCharsets.UTF_8);
    lines.forEach(l -> System.out.println(script + ": " + l));
    String all = String.join("\n", lines);
    if (p.exitValue() == 2) {
      abort(script + " could not run here: " + all);
    }
    assertThat(p.exitValue()).as("%s's exit status; its output:\n%s", script, all).isZero();
    assertThat(lines).as("every check it made passed").noneMatch(l -> l.contains(" FAIL "))
        .anyMatch(l -> l.contains("every check passed"));
  }

  private static void stop(Process p) throws InterruptedException {
    if (!p.isAlive()) {
      return;
    }
    p.destroy();
    p.waitFor(60, TimeUnit.SECONDS); // its trap stops the engine and container it started
    p.destroyForcibly();
  }
}
