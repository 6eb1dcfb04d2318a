export {
  type SyntheticCompany,
  type LogisticFederationOptions,
  type LogisticFederation,
  logisticFederation,
} from './logistic-federation.js';
