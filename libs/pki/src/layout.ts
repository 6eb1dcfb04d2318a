/** Where initPkiDir puts each file, relative to the PKI directory. */
export const PkiFiles = Object.freeze({
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  clientsDir: 'clients',
  /** A copy of ca.crt beside the client certificates, so the clients/ folder alone configures an agent. */
  clientCaCert: 'clients/ca.crt',
  /** The one tenant name a PKI directory cannot hold: its certificate would overwrite clients/ca.crt. */
  reservedTenant: 'ca',
  clientCert: (tenant: string): string => `clients/${tenant}.crt`,
  clientKey: (tenant: string): string => `clients/${tenant}.key`,
});

/** Names the development server certificate always carries, so local clients can dial it either way. */
export const DefaultServerNames = Object.freeze({ dnsNames: ['localhost'] as readonly string[], ipAddresses: ['127.0.0.1', '::1'] as readonly string[] });
