export { privacyModule } from './main.js';
