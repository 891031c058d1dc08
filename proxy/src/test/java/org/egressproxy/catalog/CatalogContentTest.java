package org.egressproxy.catalog;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.egressproxy.config.Problems;
import org.egressproxy.match.Protocol;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Each bundled catalog holds exactly the rows of its seed table: the expected lists below were
 * read off ../shared/seeds by hand, independently of the YAML files, as "pattern ports protocol".
 */
public class CatalogContentTest {
  private static final String H = " 443 tls";
  private static final String P = " 80 http";

  public static final Map<String, List<String>> EXPECTED = new TreeMap<>(Map.ofEntries(
      // 000: Azure global required FQDN/application rules (incl. the run-together row fixed).
      Map.entry("aks-global", List.of("*.hcp.{location}.azmk8s.io" + H, "mcr.microsoft.com" + H,
          "*.data.mcr.microsoft.com" + H, "mcr-0001.mcr-msedge.net" + H,
          "management.azure.com" + H, "login.microsoftonline.com" + H,
          "packages.microsoft.com" + H, "acs-mirror.azureedge.net" + H,
          "packages.aks.azure.com" + H)),
      Map.entry("aks-china", List.of("*.hcp.{location}.cx.prod.service.azk8s.cn" + H,
          "*.tun.{location}.cx.prod.service.azk8s.cn" + H, "mcr.microsoft.com" + H,
          "*.data.mcr.microsoft.com" + H, "management.chinacloudapi.cn" + H,
          "login.chinacloudapi.cn" + H, "packages.microsoft.com" + H, "*.azk8s.cn" + H,
          "mcr.azure.cn" + H, "*.data.mcr.azure.cn" + H)),
      Map.entry("aks-usgov", List.of("*.hcp.{location}.cx.aks.containerservice.azure.us" + H,
          "mcr.microsoft.com" + H, "*.data.mcr.microsoft.com" + H,
          "management.usgovcloudapi.net" + H, "login.microsoftonline.us" + H,
          "packages.microsoft.com" + H, "acs-mirror.azureedge.net" + H,
          "packages.aks.azure.com" + H)),
      Map.entry("aks-global-ubuntu", List.of("security.ubuntu.com" + P,
          "azure.archive.ubuntu.com" + P, "changelogs.ubuntu.com" + P, "snapshot.ubuntu.com" + H)),
      Map.entry("aks-global-gpu", List.of("nvidia.github.io" + H, "us.download.nvidia.com" + H,
          "download.docker.com" + H)),
      Map.entry("aks-global-windows", List.of("onegetcdn.azureedge.net" + H,
          "go.microsoft.com" + H, "*.mp.microsoft.com" + P, "www.msftconnecttest.com" + P,
          "ctldl.windowsupdate.com" + P)),
      Map.entry("aks-global-workload-identity", List.of("login.microsoftonline.com" + H)),
      Map.entry("aks-china-workload-identity", List.of("login.chinacloudapi.cn" + H)),
      Map.entry("aks-usgov-workload-identity", List.of("login.microsoftonline.us" + H)),
      Map.entry("aks-global-defender", List.of("login.microsoftonline.com" + H,
          "*.ods.opinsights.azure.com" + H, "*.oms.opinsights.azure.com" + H)),
      Map.entry("aks-china-defender", List.of("login.microsoftonline.cn" + H,
          "*.ods.opinsights.azure.cn" + H, "*.oms.opinsights.azure.cn" + H)),
      Map.entry("aks-usgov-defender", List.of("login.microsoftonline.us" + H,
          "*.ods.opinsights.azure.us" + H, "*.oms.opinsights.azure.us" + H)),
      Map.entry("aks-global-keyvault", List.of("vault.azure.net" + H)),
      Map.entry("aks-usgov-keyvault", List.of("*.vault.usgovcloudapi.net" + H)),
      Map.entry("aks-global-monitor", List.of("*.ods.opinsights.azure.com" + H,
          "*.oms.opinsights.azure.com" + H, "dc.services.visualstudio.com" + H,
          "*.in.applicationinsights.azure.com" + H, "*.monitoring.azure.com" + H,
          "login.microsoftonline.com" + H, "global.handler.control.monitor.azure.com" + H,
          "*.ingest.monitor.azure.com" + H, "*.metrics.ingest.monitor.azure.com" + H,
          "{location}.handler.control.monitor.azure.com" + H)),
      Map.entry("aks-china-monitor", List.of("*.ods.opinsights.azure.cn" + H,
          "*.oms.opinsights.azure.cn" + H, "dc.services.visualstudio.com" + H,
          "*.in.applicationinsights.azure.com" + H, "global.handler.control.monitor.azure.cn" + H,
          "{location}.handler.control.monitor.azure.cn" + H, "*.ingest.monitor.azure.cn" + H,
          "*.metrics.ingest.monitor.azure.cn" + H)),
      Map.entry("aks-usgov-monitor", List.of("*.ods.opinsights.azure.us" + H,
          "*.oms.opinsights.azure.us" + H, "dc.services.visualstudio.com" + H,
          "*.in.applicationinsights.azure.com" + H, "global.handler.control.monitor.azure.us" + H,
          "{location}.handler.control.monitor.azure.us" + H, "*.ingest.monitor.azure.us" + H,
          "*.metrics.ingest.monitor.azure.us" + H)),
      Map.entry("aks-global-policy", List.of("data.policy.core.windows.net" + H,
          "store.policy.core.windows.net" + H, "dc.services.visualstudio.com" + H)),
      Map.entry("aks-china-policy", List.of("data.policy.azure.cn" + H,
          "store.policy.azure.cn" + H)),
      Map.entry("aks-usgov-policy", List.of("data.policy.azure.us" + H,
          "store.policy.azure.us" + H)),
      Map.entry("aks-global-cost-analysis", List.of("management.azure.com" + H,
          "login.microsoftonline.com" + H)),
      Map.entry("aks-china-cost-analysis", List.of("management.chinacloudapi.cn" + H,
          "login.microsoftonline.cn" + H)),
      Map.entry("aks-usgov-cost-analysis", List.of("management.usgovcloudapi.net" + H,
          "login.microsoftonline.us" + H)),
      Map.entry("aks-global-extensions", List.of(
          "{location}.dp.kubernetesconfiguration.azure.com" + H, "mcr.microsoft.com" + H,
          "*.data.mcr.microsoft.com" + H, "arcmktplaceprod.azurecr.io" + H,
          "arcmktplaceprod.centralindia.data.azurecr.io" + H,
          "arcmktplaceprod.japaneast.data.azurecr.io" + H,
          "arcmktplaceprod.westus2.data.azurecr.io" + H,
          "arcmktplaceprod.westeurope.data.azurecr.io" + H,
          "arcmktplaceprod.eastus.data.azurecr.io" + H, "*.ingestion.msftcloudes.com" + H,
          "*.microsoftmetrics.com" + H, "marketplaceapi.microsoft.com" + H)),
      Map.entry("aks-usgov-extensions", List.of(
          "{location}.dp.kubernetesconfiguration.azure.us" + H, "mcr.microsoft.com" + H,
          "*.data.mcr.microsoft.com" + H)),
      // 003: every FQDN row of the older China edition, deduplicated.
      Map.entry("aks-china-legacy", List.of("*.hcp.{location}.cx.prod.service.azk8s.cn" + H,
          "*.tun.{location}.cx.prod.service.azk8s.cn" + H, "mcr.azk8s.cn" + H,
          "*.data.mcr.azk8s.cn" + H, "mcr-0001.mcr-msedge.net" + H,
          "management.chinacloudapi.cn" + H, "login.partner.microsoftonline.cn" + H,
          "login.chinacloudapi.cn" + H, "packages.microsoft.com" + H,
          "acs-mirror.azureedge.net" + H, "*.azk8s.cn" + H, "security.ubuntu.com" + P,
          "azure.archive.ubuntu.com" + P, "changelogs.ubuntu.com" + P, "nvidia.github.io" + H,
          "us.download.nvidia.com" + H, "download.docker.com" + H, "onegetcdn.azureedge.net" + H,
          "go.microsoft.com" + H, "*.mp.microsoft.com" + P, "www.msftconnecttest.com" + P,
          "ctldl.windowsupdate.com" + P, "*.ods.opinsights.azure.com" + H,
          "*.oms.opinsights.azure.com" + H, "vault.azure.cn" + H,
          "dc.services.visualstudio.com" + H, "*.monitoring.azure.com" + H,
          "{location}.ingest.monitor.azure.com" + H,
          "{location}.handler.control.monitor.azure.com" + H,
          "dc.services.visualstudio.cn" + H, "*.ods.opinsights.azure.cn" + H,
          "*.oms.opinsights.azure.cn" + H, "global.handler.control.monitor.azure.cn" + H,
          "{location}.handler.control.monitor.azure.cn" + H,
          "data.policy.core.windows.net" + H, "store.policy.core.windows.net" + H,
          "data.policy.azure.cn" + H, "store.policy.azure.cn" + H)),
      // 001: Nova's external endpoints and their addresses, and the closed-environment names.
      Map.entry("nova-platform", List.of("hub.nova-platform.io" + H, "storage.cloud.croc.ru" + H,
          "access.nova-platform.io" + H, "code.nova-platform.io" + H,
          "sun.nova-platform.io 8140 tls", "217.73.63.211/32 443,8140 tls",
          "217.73.63.221/32 443 tls", "217.73.57.4/32 443,8140 tls",
          "185.12.28.202/32 443,8140 tls")),
      Map.entry("nova-universe", List.of("hub.{universeDomain}" + H, "sun.{universeDomain}" + H,
          "repo.{universeDomain}" + H, "uploads.{universeDomain}" + H))));

  private static Map<String, Catalog> builtin;
  private static Problems problems;

  @BeforeAll
  static void load() {
    problems = new Problems();
    builtin = CatalogSet.builtin(problems).stream()
        .collect(Collectors.toMap(Catalog::name, c -> c, (a, b) -> a, TreeMap::new));
  }

  @Test
  void everyBundledCatalogLoadsWithoutProblems() {
    assertThat(problems.all()).isEmpty();
    assertThat(builtin.keySet()).containsExactlyInAnyOrderElementsOf(EXPECTED.keySet());
    for (Catalog c : builtin.values()) {
      assertThat(c.origin()).isEqualTo(Catalog.BUILTIN);
      assertThat(c.description()).as(c.name()).isNotBlank();
      assertThat(c.source()).as(c.name()).matches("00[0-4]_[0-9a-f]{16}\\.txt");
    }
  }

  static Stream<String> catalogNames() {
    return EXPECTED.keySet().stream();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("catalogNames")
  void holdsExactlyTheSeedRows(String name) {
    Catalog c = builtin.get(name);
    assertThat(c).as("catalog %s is bundled", name).isNotNull();
    List<String> actual = c.rules().stream()
        .map(r -> r.pattern() + " " + r.ports() + " " + Protocol.describe(r.protocols()))
        .toList();
    assertThat(actual).as(name).doesNotHaveDuplicates()
        .containsExactlyInAnyOrderElementsOf(EXPECTED.get(name));
  }

  @Test
  void networkRulesAreRecordedAsInformational() {
    for (String required : List.of("aks-global", "aks-china", "aks-usgov", "aks-china-legacy")) {
      Set<String> ports = builtin.get(required).informational().stream()
          .map(i -> i.protocol() + "/" + i.ports()).collect(Collectors.toSet());
      assertThat(ports).as(required).contains("udp/1194", "tcp/9000", "udp/123", "udp/53",
          "tcp/443");
    }
    assertThat(builtin.get("aks-china").informational()).anyMatch(i -> i.ports().contains(22));
    for (String monitor : List.of("aks-global-monitor", "aks-china-monitor", "aks-usgov-monitor")) {
      assertThat(builtin.get(monitor).informational()).as(monitor)
          .anyMatch(i -> i.destination().contains("AzureMonitor"));
    }
  }
}
