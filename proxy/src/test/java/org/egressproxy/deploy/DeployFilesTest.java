package org.egressproxy.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.egressproxy.admin.AdminServer;
import org.egressproxy.admin.Status;
import org.egressproxy.cli.CliProcessTest;
import org.egressproxy.config.Config;
import org.egressproxy.config.HostPort;
import org.egressproxy.it.RealClientsTest;
import org.egressproxy.it.RealClientsTest.Run;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.PolicyLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.Yaml;

/**
 * The deploy/ files and the Dockerfile, checked offline: each against the tool that reads it
 * where that tool is installed (systemd-analyze, nft, cloud-init, kubectl; .ci/run installs
 * the first three), and all of them against each other and against the code: listener ports,
 * probe paths, configuration files that are copies of config/proxy.yaml, the files
 * cloud-init.yaml embeds, the Bicep template's parameters and the metric names the dashboard
 * queries. No container is built and no template is deployed here.
 */
class DeployFilesTest {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));
  private static final Path DEPLOY = REPO.resolve("deploy");

  static String read(Path p) throws Exception {
    return Files.readString(p);
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> yaml(String text) {
    return (Map<String, Object>) new Yaml().load(text);
  }

  @SuppressWarnings("unchecked")
  static <T> T at(Object node, String... path) {
    Object n = node;
    for (String key : path) {
      n = n instanceof List<?> l ? l.get(Integer.parseInt(key)) : ((Map<String, Object>) n).get(key);
      assertThat(n).as("%s in %s", String.join(".", path), node).isNotNull();
    }
    return (T) n;
  }

  /** The listener ports and the admin port of a proxy.yaml, by listener name ("admin"). */
  static Map<String, Integer> ports(Map<String, Object> proxyYaml) {
    Map<String, Integer> out = new LinkedHashMap<>();
    for (Map<String, Object> l : DeployFilesTest.<List<Map<String, Object>>>at(proxyYaml,
        "listeners")) {
      out.put((String) l.get("name"), HostPort.parse((String) l.get("bind")).port());
    }
    out.put("admin", HostPort.parse(at(proxyYaml, "admin", "bind")).port());
    return out;
  }

  /** {@code yaml} with the given top-level or nested keys removed, for comparisons. */
  @SuppressWarnings("unchecked")
  static Map<String, Object> without(Map<String, Object> yaml, String... dottedKeys) {
    Map<String, Object> copy = yaml(new Yaml().dump(yaml));
    for (String k : dottedKeys) {
      String[] parts = k.split("\\.");
      Object n = copy;
      for (int i = 0; i < parts.length - 1; i++) {
        n = n instanceof List<?> l ? l.get(Integer.parseInt(parts[i]))
            : ((Map<String, Object>) n).get(parts[i]);
      }
      assertThat(((Map<String, Object>) n).remove(parts[parts.length - 1])).as("key %s", k)
          .isNotNull();
    }
    return copy;
  }

  /** Loads a proxy.yaml with the real loader (catalog directories pointed at config/catalog). */
  static PolicyLoader.Loaded load(String proxyYaml, Path dir) throws Exception {
    String text = proxyYaml.replaceAll("catalogDirs: \\[[^]]*]",
        "catalogDirs: [\"" + REPO.resolve("config/catalog").toAbsolutePath() + "\"]");
    Path f = Files.writeString(dir.resolve("proxy.yaml"), text);
    PolicyLoader.Loaded loaded = PolicyLoader.load(f);
    assertThat(loaded.problems().all()).as("problems loading %s", f).isEmpty();
    return loaded;
  }

  // ---- the container: Dockerfile and its configuration --------------------------------

  static Map<String, Object> containerConfig() throws Exception {
    return yaml(read(DEPLOY.resolve("kubernetes/proxy.yaml")));
  }

  @Test
  void containerConfigIsConfigProxyYamlWithTheDecisionLogOnStdout(@TempDir Path dir)
      throws Exception {
    Map<String, Object> container = containerConfig();
    Map<String, Object> appliance = yaml(read(REPO.resolve("config/proxy.yaml")));
    assertThat(without(container, "decisionLog", "policy.catalogDirs"))
        .as("deploy/kubernetes/proxy.yaml differs from config/proxy.yaml in more than"
            + " decisionLog and policy.catalogDirs; bring them in step")
        .isEqualTo(without(appliance, "decisionLog", "policy.catalogDirs"));
    assertThat((String) at(container, "decisionLog", "path")).isEqualTo("-");
    assertThat((List<String>) at(container, "policy", "catalogDirs"))
        .containsExactly("/etc/egress-proxy/catalog");
    load(read(DEPLOY.resolve("kubernetes/proxy.yaml")), dir);
  }

  /** The Dockerfile's instructions, continuation lines joined, comments dropped. */
  static List<String[]> dockerfile() throws Exception {
    List<String[]> out = new ArrayList<>();
    StringBuilder cur = new StringBuilder();
    for (String line : Files.readAllLines(REPO.resolve("Dockerfile"))) {
      if (line.strip().startsWith("#") || line.isBlank()) {
        continue;
      }
      if (line.endsWith("\\")) {
        cur.append(line, 0, line.length() - 1).append(' ');
        continue;
      }
      cur.append(line);
      String[] ins = cur.toString().strip().split("\\s+", 2);
      out.add(new String[] {ins[0].toUpperCase(), ins.length > 1 ? ins[1] : ""});
      cur.setLength(0);
    }
    return out;
  }

  @Test
  void dockerfileIsMultiStageNonRootWithHealthcheckAndTheConfiguredPorts() throws Exception {
    List<String[]> ins = dockerfile();
    List<Integer> froms = new ArrayList<>();
    for (int i = 0; i < ins.size(); i++) {
      if (ins.get(i)[0].equals("FROM")) {
        froms.add(i);
      }
    }
    assertThat(froms).as("a build stage and a run stage").hasSize(2);
    assertThat(ins.get(froms.get(0))[1]).matches("maven:\\S+ AS build");
    assertThat(ins.get(froms.get(1))[1]).contains("jre");
    List<String[]> run = ins.subList(froms.get(1), ins.size());
    Map<String, String> last = new LinkedHashMap<>();
    run.forEach(i -> last.put(i[0], i[1]));
    assertThat(last.get("USER")).as("USER of the run stage").isNotNull()
        .doesNotMatch("(root|0)(:.*)?");
    Map<String, Integer> ports = ports(containerConfig());
    assertThat(Set.of(last.get("EXPOSE").split("\\s+")))
        .containsExactlyInAnyOrderElementsOf(ports.values().stream().map(String::valueOf)
            .toList());
    assertThat(last.get("HEALTHCHECK")).contains("/healthz")
        .contains("/127.0.0.1/" + ports.get("admin"));
    // every COPY from the build context names something that exists; the jar comes from the
    // build stage's Maven output; ENTRYPOINT and CMD use what was copied
    Map<String, String> copied = new LinkedHashMap<>();
    for (String[] i : ins) {
      if (!i[0].equals("COPY")) {
        continue;
      }
      List<String> args = new ArrayList<>(List.of(i[1].split("\\s+")));
      String from = args.get(0).startsWith("--from=") ? args.remove(0) : null;
      String dest = args.remove(args.size() - 1);
      for (String src : args) {
        if (from == null) {
          assertThat(REPO.resolve(src)).as("COPY source %s", src).exists();
        } else {
          assertThat(src).isEqualTo("/src/proxy/target/egress-proxy.jar");
        }
        copied.put(dest, src);
      }
    }
    assertThat(copied).containsEntry("/etc/egress-proxy/proxy.yaml",
        "deploy/kubernetes/proxy.yaml").containsEntry("/etc/egress-proxy/catalog/",
        "config/catalog/").containsKey("/opt/egress-proxy/egress-proxy.jar");
    assertThat(last.get("ENTRYPOINT")).contains("\"-jar\", \"/opt/egress-proxy/egress-proxy.jar\"")
        .contains("-XX:+UseG1GC").contains("\"-XX:MinHeapFreeRatio=5\", \"-XX:MaxHeapFreeRatio=10\"");
    assertThat(last.get("CMD")).isEqualTo(
        "[\"run\", \"--config\", \"/etc/egress-proxy/proxy.yaml\"]");
  }

  @Test
  void dockerHealthcheckCommandPassesAgainstARunningAdminEndpoint() throws Exception {
    assumeTrue(RealClientsTest.installed("bash"), "bash is not installed: test skipped");
    String hc = dockerfile().stream().filter(i -> i[0].equals("HEALTHCHECK")).findFirst()
        .orElseThrow()[1];
    Matcher m = Pattern.compile("CMD \\[\"bash\", \"-c\", \"(.*)\"]$").matcher(hc);
    assertThat(m.find()).as(hc).isTrue();
    String script = m.group(1).replace("\\\\", "\\");
    int admin = ports(containerConfig()).get("admin");
    boolean[] ready = {true};
    Status status = new Status() {
      @Override
      public boolean ready() {
        return ready[0];
      }

      @Override
      public org.egressproxy.policy.Sources sources() {
        return null;
      }

      @Override
      public Reload lastReload() {
        return null;
      }

      @Override
      public Map<String, Integer> active() {
        return Map.of();
      }

      @Override
      public List<Map.Entry<String, Long>> topDenied(int n) {
        return List.of();
      }
    };
    AdminServer server = new AdminServer(HostPort.parse("127.0.0.1:0"), Transport.select(),
        new ProxyMetrics(), status);
    try {
      String local = script.replace("/127.0.0.1/" + admin,
          "/127.0.0.1/" + server.address().getPort());
      assertThat(RealClientsTest.run("", "bash", "-c", local).status())
          .as("healthy: %s", local).isZero();
      String wrongPath = local.replace("/healthz", "/nothing-here");
      assertThat(RealClientsTest.run("", "bash", "-c", wrongPath).status())
          .as("a 404 is not healthy").isNotZero();
    } finally {
      server.close();
    }
    assertThat(RealClientsTest.run("", "bash", "-c", script.replace("/127.0.0.1/" + admin,
        "/127.0.0.1/" + CliProcessTest.freePort())).status()).as("nothing listening").isNotZero();
  }

  // ---- systemd ------------------------------------------------------------------------

  static Map<String, String> unit(Path p) throws Exception {
    Map<String, String> out = new LinkedHashMap<>();
    for (String line : Files.readAllLines(p)) {
      int eq = line.indexOf('=');
      if (!line.startsWith("#") && eq > 0) {
        out.merge(line.substring(0, eq), line.substring(eq + 1), (a, b) -> a + "\n" + b);
      }
    }
    return out;
  }

  static long megabytes(String javaOpts, String flag) {
    Matcher m = Pattern.compile(Pattern.quote(flag) + "(\\d+)([mg])").matcher(javaOpts);
    assertThat(m.find()).as("%s in %s", flag, javaOpts).isTrue();
    return Long.parseLong(m.group(1)) * (m.group(2).equals("g") ? 1024 : 1);
  }

  @Test
  void systemdUnitIsHardenedAndItsLimitsFitTheHeap() throws Exception {
    Map<String, String> u = unit(DEPLOY.resolve("systemd/egress-proxy.service"));
    assertThat(u).containsEntry("User", "egress-proxy").containsEntry("NoNewPrivileges", "yes")
        .containsEntry("ProtectSystem", "strict")
        .containsEntry("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE")
        .containsEntry("AmbientCapabilities", "CAP_NET_BIND_SERVICE")
        .containsEntry("ExecReload", "/bin/kill -HUP $MAINPID")
        .containsEntry("StandardOutput", "journal").containsEntry("Restart", "on-failure")
        .containsEntry("RestartPreventExitStatus", "2");
    assertThat(u.get("ExecStart")).contains("run --config /etc/egress-proxy/proxy.yaml");
    String opts = u.get("Environment");
    long heap = megabytes(opts, "-Xmx");
    long direct = megabytes(opts, "-XX:MaxDirectMemorySize=");
    long max = Long.parseLong(u.get("MemoryMax").replace("M", ""));
    assertThat(max).as("MemoryMax above heap + direct memory").isGreaterThan(heap + direct);
    assertThat(max).as("MemoryMax within 1.5 times heap + direct").isLessThanOrEqualTo(
        (heap + direct) * 3 / 2);
    assertThat(Long.parseLong(u.get("TimeoutStopSec").replace("s", "")))
        .as("TimeoutStopSec longer than shutdown.drain")
        .isGreaterThan(Config.DEFAULT_SHUTDOWN_DRAIN.toSeconds());
    Map<String, String> tproxy = unit(DEPLOY.resolve("systemd/egress-proxy.service.d/tproxy.conf"));
    assertThat(tproxy).containsEntry("CapabilityBoundingSet",
        "CAP_NET_BIND_SERVICE CAP_NET_ADMIN").containsEntry("Requires",
        "egress-proxy-tproxy.service");
  }

  @Test
  void systemdAnalyzeVerifiesTheUnits(@TempDir Path dir) throws Exception {
    assumeTrue(RealClientsTest.installed("systemd-analyze"),
        "systemd-analyze is not installed (apt-get install systemd; .ci/run does): test skipped");
    Path units = dir.resolve("units");
    Files.createDirectories(units.resolve("egress-proxy.service.d"));
    for (String f : List.of("egress-proxy.service", "egress-proxy-tproxy.service",
        "egress-proxy.service.d/tproxy.conf")) {
      Files.copy(DEPLOY.resolve("systemd").resolve(f), units.resolve(f));
    }
    Run r = RealClientsTest.run("", "systemd-analyze", "verify",
        units.resolve("egress-proxy.service").toString(),
        units.resolve("egress-proxy-tproxy.service").toString());
    // verify also reads the drop-in; it reports unknown keys without failing, so any output
    // is a problem
    assertThat(r.output()).as("systemd-analyze verify output").isEmpty();
    assertThat(r.status()).isZero();
  }

  // ---- nftables -----------------------------------------------------------------------

  @Test
  void nftAcceptsTheRulesWithTheScriptsVariables() throws Exception {
    assumeTrue(RealClientsTest.installed("nft"),
        "nftables is not installed (apt-get install nftables; .ci/run does): test skipped");
    String rules = read(DEPLOY.resolve("nftables/egress-proxy.nft"));
    String script = read(DEPLOY.resolve("nftables/egress-proxy-tproxy.sh"));
    Set<String> used = new TreeSet<>();
    Matcher m = Pattern.compile("\\$([A-Z_]+)").matcher(rules.replaceAll("(?m)^#.*$", ""));
    while (m.find()) {
      used.add(m.group(1));
    }
    Set<String> passed = new TreeSet<>();
    Matcher d = Pattern.compile("-D \"([A-Z_]+)=").matcher(script);
    while (d.find()) {
      passed.add(d.group(1));
    }
    assertThat(passed).as("variables the script defines = variables the rules use")
        .isEqualTo(used).contains("TLS_PORT", "HTTP_PORT", "MARK", "CLIENTS");
    Map<String, Integer> ports = ports(yaml(read(REPO.resolve("config/proxy.yaml"))));
    assertThat(script).contains("TLS_PORT=${TLS_PORT:-" + ports.get("tls") + "}")
        .contains("HTTP_PORT=${HTTP_PORT:-" + ports.get("http") + "}");
    Run r = RealClientsTest.run("", "nft", "-c", "-D", "TLS_PORT=8443", "-D", "HTTP_PORT=8080",
        "-D", "MARK=0x1", "-D", "CLIENTS={ 10.224.0.0/16, 192.168.0.0/16 }", "-f",
        DEPLOY.resolve("nftables/egress-proxy.nft").toString());
    assertThat(r.status()).as(r.output()).isZero();
    assertThat(rules).contains("tcp dport 443 tproxy ip to :$TLS_PORT")
        .contains("tcp dport 80 tproxy ip to :$HTTP_PORT");
    assertThat(script).contains("ip -4 rule add fwmark \"$MARK\" lookup \"$ROUTE_TABLE\"")
        .contains("ip -4 route replace local 0.0.0.0/0 dev lo table \"$ROUTE_TABLE\"");
  }

  // ---- cloud-init and the Azure template ----------------------------------------------

  static final Map<String, String> SAMPLE = Map.of(
      "JAR_URL", "https://releases.example.invalid/egress-proxy.jar",
      "JAR_SHA256", "0".repeat(64),
      "LOCATION", "eastus",
      "CATALOGS", "aks-global, aks-global-ubuntu, aks-global-monitor, nova-platform",
      "TRANSPARENT", "true",
      "CLIENT_CIDRS", "10.224.0.0/16,10.225.0.0/16");

  static Set<String> placeholders(String text) {
    Set<String> out = new TreeSet<>();
    Matcher m = Pattern.compile("@@([A-Z0-9_]+)@@").matcher(text);
    while (m.find()) {
      out.add(m.group(1));
    }
    return out;
  }

  static String filled(String text) {
    for (Map.Entry<String, String> e : SAMPLE.entrySet()) {
      text = text.replace("@@" + e.getKey() + "@@", e.getValue());
    }
    return text;
  }

  @SuppressWarnings("unchecked")
  static Map<String, String> writeFiles(String cloudInit) {
    Map<String, String> out = new LinkedHashMap<>();
    for (Map<String, Object> f : (List<Map<String, Object>>) yaml(cloudInit).get("write_files")) {
      out.put((String) f.get("path"), (String) f.get("content"));
    }
    return out;
  }

  @Test
  void cloudInitEmbedsTheRepositorysFilesAndAValidApplianceConfig(@TempDir Path dir)
      throws Exception {
    String cloudInit = read(DEPLOY.resolve("cloud-init.yaml"));
    assertThat(cloudInit).startsWith("#cloud-config\n");
    assertThat(placeholders(cloudInit)).isEqualTo(SAMPLE.keySet().stream()
        .collect(Collectors.toCollection(TreeSet::new)));
    Map<String, String> files = writeFiles(cloudInit);
    Map<String, String> copies = Map.of(
        "/etc/systemd/system/egress-proxy.service", "systemd/egress-proxy.service",
        "/opt/egress-proxy/systemd/tproxy.conf", "systemd/egress-proxy.service.d/tproxy.conf",
        "/etc/systemd/system/egress-proxy-tproxy.service", "systemd/egress-proxy-tproxy.service",
        "/opt/egress-proxy/nftables/egress-proxy.nft", "nftables/egress-proxy.nft",
        "/opt/egress-proxy/nftables/egress-proxy-tproxy.sh", "nftables/egress-proxy-tproxy.sh");
    for (Map.Entry<String, String> c : copies.entrySet()) {
      assertThat(files.get(c.getKey()))
          .as("deploy/cloud-init.yaml writes %s as a copy of deploy/%s: copy the file's current"
              + " text there", c.getKey(), c.getValue())
          .isEqualTo(read(DEPLOY.resolve(c.getValue())));
    }
    // the appliance configuration: config/proxy.yaml with the template's parameters
    String applianceText = filled(files.get("/etc/egress-proxy/proxy.yaml"));
    Map<String, Object> appliance = yaml(applianceText);
    Map<String, Object> example = yaml(read(REPO.resolve("config/proxy.yaml")));
    assertThat(without(appliance, "variables", "policy.catalogs", "policy.catalogDirs",
        "listeners.1.transparent", "listeners.2.transparent"))
        .as("the appliance proxy.yaml in cloud-init.yaml follows config/proxy.yaml")
        .isEqualTo(without(example, "variables", "policy.catalogs", "policy.catalogDirs"));
    Config config = load(applianceText, dir).config();
    assertThat(config.listeners()).filteredOn(Config.Listener::transparent)
        .extracting(Config.Listener::name).containsExactly("tls", "http");
    assertThat(files.get("/etc/default/egress-proxy-tproxy"))
        .contains("TLS_PORT=" + ports(appliance).get("tls"))
        .contains("HTTP_PORT=" + ports(appliance).get("http"));
    // Azure's customData holds at most 64 KiB
    assertThat(cloudInit.length()).isLessThan(64 * 1024);
  }

  @Test
  void cloudInitSchemaCheck(@TempDir Path dir) throws Exception {
    assumeTrue(RealClientsTest.installed("cloud-init"),
        "cloud-init is not installed (apt-get install cloud-init; .ci/run does): test skipped");
    for (String variant : List.of("raw", "filled")) {
      String text = read(DEPLOY.resolve("cloud-init.yaml"));
      Path f = Files.writeString(dir.resolve(variant + ".yaml"),
          variant.equals("raw") ? text : filled(text));
      Run r = RealClientsTest.run("", "cloud-init", "schema", "--config-file", f.toString());
      assertThat(r.status()).as(variant + ": " + r.output()).isZero();
      assertThat(r.output()).contains("Valid cloud-config");
    }
  }

  /** {@code param NAME TYPE [= default]} lines of main.bicep, with their decorators. */
  record BicepParam(String name, String type, boolean hasDefault, String decorators) {}

  static Map<String, BicepParam> bicepParams(String bicep) {
    Map<String, BicepParam> out = new LinkedHashMap<>();
    StringBuilder decorators = new StringBuilder();
    for (String line : bicep.split("\n")) {
      if (line.startsWith("@")) {
        decorators.append(line).append('\n');
        continue;
      }
      Matcher m = Pattern.compile("param (\\w+) (\\w+)( = .*)?").matcher(line);
      if (m.matches()) {
        out.put(m.group(1), new BicepParam(m.group(1), m.group(2), m.group(3) != null,
            decorators.toString()));
      }
      decorators.setLength(0);
    }
    return out;
  }

  @Test
  void bicepTemplateHasTheParametersAndWiresCloudInitLoadBalancerNsgAndRoutes()
      throws Exception {
    String bicep = read(DEPLOY.resolve("azure/main.bicep"));
    Map<String, BicepParam> params = bicepParams(bicep);
    assertThat(params).containsKeys("location", "clientCidrs", "instanceCount", "catalogs",
        "hubVnetCidr", "applianceSubnetCidr", "proxyAddress", "enableTransparent", "jarUrl",
        "jarSha256");
    assertThat(params.get("clientCidrs").type()).isEqualTo("array");
    assertThat(params.get("catalogs").type()).isEqualTo("array");
    assertThat(params.get("instanceCount").decorators()).contains("@minValue(2)");
    // the example parameters name only declared parameters, and every required one
    JsonNode example = new ObjectMapper().readTree(
        DEPLOY.resolve("azure/main.parameters.json").toFile()).get("parameters");
    Set<String> given = new TreeSet<>();
    example.fieldNames().forEachRemaining(given::add);
    assertThat(params.keySet()).containsAll(given);
    assertThat(given).containsAll(params.values().stream().filter(p -> !p.hasDefault())
        .map(BicepParam::name).toList());
    // cloud-init: loaded from the repository, every placeholder filled
    assertThat(bicep).contains("loadTextContent('../cloud-init.yaml')");
    for (String p : placeholders(read(DEPLOY.resolve("cloud-init.yaml")))) {
      assertThat(bicep).as("main.bicep fills @@%s@@", p).contains("key: '@@" + p + "@@'");
    }
    // ports and probe agree with the appliance configuration
    Map<String, Integer> ports = ports(yaml(filled(
        writeFiles(read(DEPLOY.resolve("cloud-init.yaml"))).get("/etc/egress-proxy/proxy.yaml"))));
    assertThat(bicep).contains("var explicitPort = " + ports.get("explicit"))
        .contains("var tlsSniPort = " + ports.get("tls"))
        .contains("var httpHostPort = " + ports.get("http"))
        .contains("var adminPort = " + ports.get("admin"))
        .contains("requestPath: '/readyz'")
        .containsPattern("protocol: 'All'\\s+frontendPort: 0\\s+backendPort: 0")
        .contains("enableIPForwarding: true")
        .containsPattern("addressPrefix: '0.0.0.0/0'\\s+nextHopType: 'VirtualAppliance'\\s+"
            + "nextHopIpAddress: proxyAddress")
        .contains("sourceAddressPrefixes: clientCidrs")
        .contains("capacity: instanceCount")
        .contains("customData: base64(cloudInit)");
  }

  // ---- Kubernetes ---------------------------------------------------------------------

  @SuppressWarnings("unchecked")
  static Map<String, Map<String, Object>> manifests() throws Exception {
    Map<String, Map<String, Object>> byKind = new LinkedHashMap<>();
    Map<String, Object> kustomization = yaml(read(DEPLOY.resolve(
        "kubernetes/kustomization.yaml")));
    for (String f : (List<String>) kustomization.get("resources")) {
      for (Object doc : new Yaml().loadAll(read(DEPLOY.resolve("kubernetes").resolve(f)))) {
        Map<String, Object> m = (Map<String, Object>) doc;
        byKind.put((String) m.get("kind"), m);
      }
    }
    byKind.put("Kustomization", kustomization);
    return byKind;
  }

  @Test
  @SuppressWarnings("unchecked")
  void kubernetesManifestsAgreeWithEachOtherAndTheConfiguration() throws Exception {
    Map<String, Map<String, Object>> k = manifests();
    assertThat(k).containsKeys("Namespace", "Deployment", "PodDisruptionBudget", "Service",
        "NetworkPolicy");
    Map<String, Object> dep = k.get("Deployment");
    assertThat((Integer) at(dep, "spec", "replicas")).isEqualTo(2);
    Map<String, Object> labels = at(dep, "spec", "template", "metadata", "labels");
    assertThat((Map<String, Object>) at(dep, "spec", "selector", "matchLabels"))
        .isEqualTo(labels);
    Map<String, Object> c = at(dep, "spec", "template", "spec", "containers", "0");
    Map<String, Integer> ports = ports(containerConfig());
    Map<String, Integer> containerPorts = new LinkedHashMap<>();
    for (Map<String, Object> p : (List<Map<String, Object>>) c.get("ports")) {
      containerPorts.put((String) p.get("name"), (Integer) p.get("containerPort"));
    }
    assertThat(containerPorts.values()).containsExactlyInAnyOrderElementsOf(ports.values());
    assertThat(containerPorts).containsEntry("admin", ports.get("admin"));
    assertThat((String) at(c, "livenessProbe", "httpGet", "path")).isEqualTo("/healthz");
    assertThat((String) at(c, "livenessProbe", "httpGet", "port")).isEqualTo("admin");
    assertThat((String) at(c, "readinessProbe", "httpGet", "path")).isEqualTo("/readyz");
    assertThat((String) at(c, "readinessProbe", "httpGet", "port")).isEqualTo("admin");
    assertThat((String) at(c, "resources", "requests", "memory")).isNotBlank();
    assertThat((String) at(c, "resources", "requests", "cpu")).isNotBlank();
    assertThat((String) at(c, "resources", "limits", "memory")).isNotBlank();
    assertThat((Boolean) at(c, "securityContext", "readOnlyRootFilesystem")).isTrue();
    assertThat((Integer) at(dep, "spec", "template", "spec", "terminationGracePeriodSeconds"))
        .isGreaterThan((int) Config.DEFAULT_SHUTDOWN_DRAIN.toSeconds());
    // the ConfigMap (from proxy.yaml, by kustomize, its name kept so that an update is applied
    // in place) is mounted as a directory, which the kubelet updates (a subPath mount is never
    // updated), and --config points into it
    List<Map<String, Object>> volumes = at(dep, "spec", "template", "spec", "volumes");
    assertThat(volumes).anySatisfy(v -> assertThat(v).extractingByKey("configMap")
        .isEqualTo(Map.of("name", "egress-proxy-config")));
    assertThat((List<Map<String, Object>>) c.get("volumeMounts")).anySatisfy(v ->
        assertThat(v).containsEntry("name", "config")
            .containsEntry("mountPath", "/etc/egress-proxy/config").doesNotContainKey("subPath"));
    assertThat((List<String>) c.get("args"))
        .containsExactly("run", "--config", "/etc/egress-proxy/config/proxy.yaml");
    assertThat((List<Map<String, Object>>) at(k.get("Kustomization"), "configMapGenerator"))
        .singleElement().satisfies(g -> assertThat(g).containsEntry("name", "egress-proxy-config")
            .containsEntry("files", List.of("proxy.yaml"))
            .containsEntry("options", Map.of("disableNameSuffixHash", true)));
    // PDB, Service and NetworkPolicy select these pods
    Map<String, Object> pdb = k.get("PodDisruptionBudget");
    assertThat((Map<String, Object>) at(pdb, "spec", "selector", "matchLabels"))
        .isEqualTo(labels);
    assertThat((Integer) at(pdb, "spec", "minAvailable")).isEqualTo(1);
    Map<String, Object> svc = k.get("Service");
    assertThat((Map<String, Object>) at(svc, "spec", "selector")).isEqualTo(labels);
    for (Map<String, Object> p : (List<Map<String, Object>>) at(svc, "spec", "ports")) {
      assertThat(containerPorts).containsKey((String) p.get("targetPort"));
    }
    Map<String, Object> np = k.get("NetworkPolicy");
    assertThat((Map<String, Object>) at(np, "spec", "podSelector", "matchLabels"))
        .isEqualTo(labels);
    assertThat(new Yaml().dump(at(np, "spec", "ingress")))
        .contains("port: " + ports.get("explicit"));
    assertThat((List<String>) at(np, "spec", "policyTypes")).containsExactly("Ingress",
        "Egress");
  }

  @Test
  void kustomizeBuildsTheManifests() throws Exception {
    assumeTrue(RealClientsTest.installed("kubectl"),
        "kubectl is not installed: kustomize build not checked (the manifests are parsed in"
            + " kubernetesManifestsAgreeWithEachOtherAndTheConfiguration)");
    Run r = RealClientsTest.run("", "kubectl", "kustomize",
        DEPLOY.resolve("kubernetes").toString());
    assertThat(r.status()).as(r.output()).isZero();
    assertThat(r.output()).contains("kind: ConfigMap").contains("name: egress-proxy-config\n")
        .doesNotContain("egress-proxy-config-") // no hash suffix: updated in place
        .contains("kind: Deployment").contains("namespace: egress-proxy");
  }

  // ---- AKS and Nova examples: what the export command writes ---------------------------

  static String export(String... args) throws Exception {
    Process p = CliProcessTest.java(REPO, args).redirectErrorStream(false).start();
    p.getOutputStream().close();
    byte[] out = p.getInputStream().readAllBytes();
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(new String(p.getErrorStream().readAllBytes())).isZero();
    return new String(out, java.nio.charset.StandardCharsets.UTF_8);
  }

  @Test
  void aksAndNovaExamplesAreWhatExportWrites() throws Exception {
    String aks = export("export", "aks", "--config", "config/proxy.yaml", "--proxy-address",
        "10.100.1.100", "--no-proxy", "10.224.0.0/16,10.244.0.0/16,10.0.0.0/16");
    assertThat(read(DEPLOY.resolve("aks/http-proxy-config.json")))
        .as("deploy/aks/http-proxy-config.json = the export command's output").isEqualTo(aks);
    String nova = export("export", "nova", "--config", "config/proxy.yaml", "--proxy-address",
        "10.100.1.100", "--no-proxy",
        "10.224.0.0/16,10.244.0.0/16,10.0.0.0/16,.nova.mycompany.local");
    String file = read(DEPLOY.resolve("nova/nova-deployment-conf.proxy.yaml"));
    assertThat(file).endsWith(nova)
        .contains("--no-proxy 10.224.0.0/16,10.244.0.0/16,10.0.0.0/16,.nova.mycompany.local");
    assertThat(read(DEPLOY.resolve("nova/README.md"))).contains("| Все узлы (all nodes) |")
        .contains("3128/tcp");
  }

  // ---- Grafana ------------------------------------------------------------------------

  /** Every metric name /metrics exposes once each meter has been used. */
  static Set<String> exportedMetricNames() {
    ProxyMetrics m = new ProxyMetrics();
    m.listener("tls");
    m.bytes("tls", "default").up().increment();
    m.decision("tls", "default", false, "no-match");
    m.reload(true);
    m.limitRejected("tls", "total");
    m.upstreamConnect().record(java.time.Duration.ofMillis(3));
    m.bindDecisionCache(com.github.benmanes.caffeine.cache.Caffeine.newBuilder().recordStats()
        .build());
    m.bindDecisionLogDrops(new Object(), o -> 0);
    Set<String> names = new TreeSet<>();
    for (String line : m.scrape().split("\n")) {
      if (!line.startsWith("#") && !line.isBlank()) {
        names.add(line.split("[{ ]", 2)[0]);
      }
    }
    return names;
  }

  @Test
  void grafanaDashboardQueriesOnlyExportedMetricsAndCoversTheContract() throws Exception {
    JsonNode dash = new ObjectMapper().readTree(
        DEPLOY.resolve("grafana/egress-proxy-dashboard.json").toFile());
    Set<String> exported = exportedMetricNames();
    assertThat(exported).contains("egress_decisions_total", "egress_connections_active",
        "egress_bytes_total", "cache_gets_total", "egress_config_reloads_total",
        "egress_upstream_connect_seconds_bucket");
    List<String> exprs = new ArrayList<>();
    dash.get("panels").forEach(p -> {
      assertThat(p.get("targets")).as("panel %s has queries", p.get("title")).isNotEmpty();
      p.get("targets").forEach(t -> exprs.add(t.get("expr").asText()));
    });
    dash.get("templating").get("list").forEach(v -> {
      if (v.has("definition")) {
        exprs.add(v.get("definition").asText());
      }
    });
    Set<String> queried = new TreeSet<>();
    Pattern selector = Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*)\\s*\\{|label_values\\((\\w+)");
    for (String e : exprs) {
      Matcher m = selector.matcher(e);
      int found = 0;
      while (m.find()) {
        queried.add(m.group(1) != null ? m.group(1) : m.group(2));
        found++;
      }
      assertThat(found).as("a metric selector in %s", e).isPositive();
    }
    assertThat(exported).as("metrics the dashboard queries that /metrics exports")
        .containsAll(queried);
    assertThat(queried).contains("egress_decisions_total", "egress_connections_active",
        "egress_bytes_total", "cache_gets_total", "egress_config_reloads_total");
    String titles = new ObjectMapper().writeValueAsString(dash.get("panels")).toLowerCase();
    assertThat(titles).contains("decisions by reason").contains("top denials")
        .contains("bytes relayed").contains("active connections").contains("cache hit ratio")
        .contains("reloads");
    assertThat(exprs).anySatisfy(e -> assertThat(e).contains("by (decision, reason)"))
        .anySatisfy(e -> assertThat(e).contains("topk(").contains("decision=\"deny\""))
        .anySatisfy(e -> assertThat(e).contains("result=\"hit\""))
        // policy.sources: the source label of decisions and bytes
        .anySatisfy(e -> assertThat(e).contains("by (source, decision)")
            .contains("egress_decisions_total"))
        .anySatisfy(e -> assertThat(e).contains("by (source, direction)")
            .contains("egress_bytes_total"));
  }
}
