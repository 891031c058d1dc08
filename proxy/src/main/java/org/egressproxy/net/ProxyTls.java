package org.egressproxy.net;

import io.netty.handler.ssl.ApplicationProtocolConfig;
import io.netty.handler.ssl.ApplicationProtocolNames;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.egressproxy.config.Config;
import org.egressproxy.match.IpLiteral;

/**
 * TLS for an HTTPS proxy listener ({@code tls:} on http-proxy): a certificate and key from PEM
 * files, or a self-signed setup made with BouncyCastle on first start and reused afterwards: a
 * CA ({@code ca.pem}, the file to give clients, e.g. AKS's trustedCa) and a serving certificate
 * for the listener's names and addresses. Private keys are written PKCS#8 PEM, mode 0600.
 */
public final class ProxyTls {
  /** A listener's TLS context and, when self-signed, the CA clients must trust. */
  public record Material(SslContext context, Path caFile) {}

  private ProxyTls() {}

  /** The TLS material of every listener that has {@code tls:}, by listener name. */
  public static Map<String, Material> load(List<Config.Listener> listeners)
      throws IOException, GeneralSecurityException {
    Map<String, Material> out = new LinkedHashMap<>();
    for (Config.Listener l : listeners) {
      if (l.tls() != null) {
        out.put(l.name(), material(l));
      }
    }
    return out;
  }

  static Material material(Config.Listener l) throws IOException, GeneralSecurityException {
    Config.Listener.Tls tls = l.tls();
    SslContextBuilder b;
    Path ca = null;
    if (tls.selfSigned()) {
      Path dir = tls.dir();
      Files.createDirectories(dir);
      ca = dir.resolve("ca.pem");
      Path caKey = dir.resolve("ca-key.pem");
      Path cert = dir.resolve(l.name() + ".pem");
      Path key = dir.resolve(l.name() + "-key.pem");
      KeyPair caPair;
      X509Certificate caCert;
      if (Files.exists(ca) && Files.exists(caKey)) {
        caCert = readCert(ca);
        caPair = new KeyPair(caCert.getPublicKey(), readKey(caKey));
      } else {
        caPair = ecKeys();
        X500Name name = new X500Name("CN=egress-proxy CA " + Instant.now().getEpochSecond());
        JcaX509v3CertificateBuilder cb = new JcaX509v3CertificateBuilder(name,
            BigInteger.valueOf(System.nanoTime()), Date.from(Instant.now().minusSeconds(300)),
            Date.from(Instant.now().plus(Duration.ofDays(3650))), name, caPair.getPublic());
        cb.addExtension(Extension.basicConstraints, true, new BasicConstraints(0));
        cb.addExtension(Extension.keyUsage, true,
            new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
        caCert = sign(cb, caPair);
        writePem(ca, "CERTIFICATE", caCert.getEncoded(), false);
        writePem(caKey, "PRIVATE KEY", caPair.getPrivate().getEncoded(), true);
      }
      if (!Files.exists(cert) || !Files.exists(key)) {
        KeyPair serverPair = ecKeys();
        Set<String> names = new LinkedHashSet<>(tls.names());
        names.add("localhost");
        IpLiteral bind = l.bind().address();
        byte[] any = bind.bytes();
        boolean wildcard = true;
        for (byte x : any) {
          wildcard &= x == 0;
        }
        if (!wildcard) {
          names.add(bind.toString());
        }
        names.add("127.0.0.1");
        List<GeneralName> alt = new ArrayList<>();
        for (String n : names) {
          alt.add(new GeneralName(IpLiteral.parse(n) != null ? GeneralName.iPAddress
              : GeneralName.dNSName, n));
        }
        JcaX509v3CertificateBuilder sb = new JcaX509v3CertificateBuilder(
            X500Name.getInstance(caCert.getSubjectX500Principal().getEncoded()),
            BigInteger.valueOf(System.nanoTime()), Date.from(Instant.now().minusSeconds(300)),
            Date.from(Instant.now().plus(Duration.ofDays(825))),
            new X500Name("CN=" + names.iterator().next()), serverPair.getPublic());
        sb.addExtension(Extension.subjectAlternativeName, false,
            new GeneralNames(alt.toArray(new GeneralName[0])));
        sb.addExtension(Extension.extendedKeyUsage, false,
            new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
        X509Certificate serverCert = sign(sb, caPair);
        writePem(cert, "CERTIFICATE", serverCert.getEncoded(), false);
        writePem(key, "PRIVATE KEY", serverPair.getPrivate().getEncoded(), true);
      }
      b = SslContextBuilder.forServer(readKey(key), readCert(cert), caCert);
    } else {
      b = SslContextBuilder.forServer(tls.certFile().toFile(), tls.keyFile().toFile());
    }
    SslContext ctx = b.applicationProtocolConfig(new ApplicationProtocolConfig(
        ApplicationProtocolConfig.Protocol.ALPN,
        ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
        ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT,
        ApplicationProtocolNames.HTTP_1_1)).build();
    return new Material(ctx, ca);
  }

  private static KeyPair ecKeys() throws GeneralSecurityException {
    KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
    g.initialize(256);
    return g.generateKeyPair();
  }

  private static X509Certificate sign(JcaX509v3CertificateBuilder b, KeyPair issuer)
      throws GeneralSecurityException {
    try {
      return new JcaX509CertificateConverter().getCertificate(
          b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(issuer.getPrivate())));
    } catch (org.bouncycastle.operator.OperatorCreationException e) {
      throw new GeneralSecurityException(e);
    }
  }

  static void writePem(Path file, String type, byte[] der, boolean secret) throws IOException {
    String pem = "-----BEGIN " + type + "-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
        + "\n-----END " + type + "-----\n";
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.writeString(tmp, pem, StandardCharsets.US_ASCII);
    if (secret) {
      try {
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
      } catch (UnsupportedOperationException e) {
        // not a POSIX file system: the directory's permissions protect it
      }
    }
    Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
  }

  static X509Certificate readCert(Path file) throws IOException, GeneralSecurityException {
    try (InputStream in = Files.newInputStream(file)) {
      return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
    }
  }

  static PrivateKey readKey(Path file) throws IOException, GeneralSecurityException {
    String pem = Files.readString(file, StandardCharsets.US_ASCII)
        .replaceAll("-----(BEGIN|END) PRIVATE KEY-----", "").replaceAll("\\s", "");
    return KeyFactory.getInstance("EC").generatePrivate(
        new PKCS8EncodedKeySpec(Base64.getDecoder().decode(pem)));
  }
}
