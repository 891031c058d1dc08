package org.egressproxy.it;

import io.netty.handler.ssl.ApplicationProtocolConfig;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.math.BigInteger;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.Date;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/** A test CA and a server certificate for given names, generated with BouncyCastle per run. */
public final class TestCerts {
  public final X509Certificate ca;
  public final X509Certificate server;
  public final KeyPair serverKey;

  public TestCerts(String... names) throws Exception {
    KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
    g.initialize(256);
    KeyPair caKey = g.generateKeyPair();
    serverKey = g.generateKeyPair();
    Date from = new Date(System.currentTimeMillis() - 60_000);
    Date to = new Date(System.currentTimeMillis() + 86_400_000L);
    X500Name caName = new X500Name("CN=egress-proxy test CA");
    JcaX509v3CertificateBuilder cab = new JcaX509v3CertificateBuilder(caName, BigInteger.ONE,
        from, to, caName, caKey.getPublic());
    cab.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
    ca = new JcaX509CertificateConverter().getCertificate(
        cab.build(new JcaContentSignerBuilder("SHA256withECDSA").build(caKey.getPrivate())));
    JcaX509v3CertificateBuilder sb = new JcaX509v3CertificateBuilder(caName, BigInteger.TWO,
        from, to, new X500Name("CN=" + names[0]), serverKey.getPublic());
    GeneralName[] alt = new GeneralName[names.length];
    for (int i = 0; i < names.length; i++) {
      alt[i] = new GeneralName(GeneralName.dNSName, names[i]);
    }
    sb.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(alt));
    server = new JcaX509CertificateConverter().getCertificate(
        sb.build(new JcaContentSignerBuilder("SHA256withECDSA").build(caKey.getPrivate())));
  }

  /** Netty server context offering these ALPN protocols (server preference order). */
  public SslContext serverContext(String... alpn) throws Exception {
    return SslContextBuilder.forServer(serverKey.getPrivate(), server, ca)
        .applicationProtocolConfig(new ApplicationProtocolConfig(
            ApplicationProtocolConfig.Protocol.ALPN,
            ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
            ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT, alpn))
        .build();
  }

  /** A JDK client context that trusts the test CA. */
  public SSLContext clientContext() throws Exception {
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    ks.setCertificateEntry("ca", ca);
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(
        TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(ks);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }

  /** The CA as PEM, for curl and openssl. */
  public String caPem() throws Exception {
    return "-----BEGIN CERTIFICATE-----\n"
        + java.util.Base64.getMimeEncoder(64, "\n".getBytes()).encodeToString(ca.getEncoded())
        + "\n-----END CERTIFICATE-----\n";
  }
}
