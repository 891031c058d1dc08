package org.egressproxy.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.Yaml;

/** The export command's output, parsed and checked field by field. */
class ExportCommandTest {
  @Test
  void aksHttpProxyConfig(@TempDir Path dir) throws Exception {
    Path ca = Files.writeString(dir.resolve("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    CliTest.Result r = CliTest.run("export", "aks", "--proxy-address", "10.0.0.4",
        "--no-proxy", "10.244.0.0/16,10.0.0.0/16", "--no-proxy", "*.corp.example",
        "--no-proxy", "Registry.Corp.Example.", "--trusted-ca", ca.toString());
    assertThat(r.status()).as(r.err()).isZero();
    JsonNode json = new ObjectMapper().readTree(r.out());
    assertThat(json.get("httpProxy").asText()).isEqualTo("http://10.0.0.4:3128/");
    assertThat(json.get("httpsProxy").asText()).isEqualTo("http://10.0.0.4:3128/");
    List<String> noProxy = new ArrayList<>();
    json.get("noProxy").forEach(n -> noProxy.add(n.asText()));
    assertThat(noProxy).containsExactly("localhost", "127.0.0.1", "169.254.169.254",
        "168.63.129.16", ".svc", ".cluster.local", "10.244.0.0/16", "10.0.0.0/16",
        ".corp.example", "registry.corp.example");
    assertThat(noProxy).noneMatch(e -> e.contains("*"));
    assertThat(new String(Base64.getDecoder().decode(json.get("trustedCa").asText()),
        StandardCharsets.US_ASCII)).startsWith("-----BEGIN CERTIFICATE-----");
    assertThat(json.size()).isEqualTo(4);
  }

  @Test
  @SuppressWarnings("unchecked")
  void novaProxySection() {
    CliTest.Result r = CliTest.run("export", "nova", "--proxy-address", "fd00::4",
        "--no-proxy", ".nova.mycompany.local");
    assertThat(r.status()).as(r.err()).isZero();
    Map<String, Object> doc = new Yaml().load(r.out());
    Map<String, Object> proxy = (Map<String, Object>) doc.get("proxy");
    assertThat(proxy.get("httpProxy")).isEqualTo("http://[fd00::4]:3128/");
    assertThat(proxy.get("httpsProxy")).isEqualTo("http://[fd00::4]:3128/");
    assertThat(proxy.get("noProxy").toString()).endsWith(",.nova.mycompany.local")
        .startsWith("localhost,127.0.0.1");
  }

  @Test
  void refusesWhatCannotBeWritten() {
    assertThat(CliTest.run("export", "gke", "--proxy-address", "10.0.0.4").status()).isEqualTo(2);
    assertThat(CliTest.run("export", "aks", "--proxy-address", "10.0.0.4", "--no-proxy",
        "a b").status()).isEqualTo(2);
    assertThat(CliTest.run("export", "aks").status()).isEqualTo(2);
  }

  /** An address with a port or a scheme would make a proxy URL no node can use: refused. */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(strings = {"10.0.0.4:3128",
      "http://10.0.0.4", "[fd00::4]:3128", "proxy.example.com:3128", "10.0.0.4/32", "a b",
      "10.0.4"})
  void refusesAProxyAddressThatIsNotAnIpOrName(String address) {
    CliTest.Result r = CliTest.run("export", "aks", "--proxy-address", address);
    assertThat(r.status()).as(r.out()).isEqualTo(2);
    assertThat(r.out()).isEmpty();
    assertThat(r.err()).contains("--proxy-address '" + address + "'")
        .contains("without a scheme or port");
  }

  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.CsvSource({"[fd00::4], http://[fd00::4]:3128/",
      "FD00:0:0::4, http://[fd00::4]:3128/", "Proxy.Hub.Example, http://proxy.hub.example:3128/"})
  void writesTheProxyAddressInItsCanonicalForm(String address, String url) {
    CliTest.Result r = CliTest.run("export", "aks", "--proxy-address", address);
    assertThat(r.status()).as(r.err()).isZero();
    assertThat(r.out()).contains("\"httpProxy\": \"" + url + "\"");
  }
}
