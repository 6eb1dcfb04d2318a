// tsyringe, which @peculiar/x509 uses for its algorithm registry, needs the Reflect metadata API
// before it loads; ESM evaluates imports in order, so this import must stay first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
